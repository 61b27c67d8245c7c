#!/usr/bin/env bash
# Set up .venv on a machine that has only Python 3.11: a CPU build of torch first (a bare `torch`
# requirement would pull a multi-GB CUDA build), then this project with its test extras. Idempotent:
# re-runs only when pyproject.toml changed. TORCH_SPEC overrides the torch requirement (e.g. a CUDA build).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
stamp=.venv/.setup-stamp
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
[ -x .venv/bin/python ] || "$python" -m venv .venv
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setting up .venv (torch, then lightning_llm[test]) ..." >&2
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
  .venv/bin/python -m pip install -q -e ".[test]"
  # LitData (streaming) without its torchvision requirement, which would pull a CUDA build of torch
  .venv/bin/python -m pip install -q --no-deps "litdata>=0.2.76,<0.3"
  echo "$want" > "$stamp"
fi
