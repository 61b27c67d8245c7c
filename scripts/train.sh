#!/usr/bin/env bash
# Quickstart: set up, then run a recipe end to end (default: shakespeare). Extra arguments go to llm-train.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/llm-train "$@"
