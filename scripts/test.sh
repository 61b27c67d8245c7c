#!/usr/bin/env bash
# Quickstart: set up, then run the test suite (slow tests excluded; `-m slow` runs them). CI runs this.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
.venv/bin/python -m pytest -q "$@"
rc=$?
# pytest exits 5 when it collected nothing: a suite that checks nothing must not pass.
[ $rc -eq 5 ] && echo "error: pytest collected no tests" >&2 && exit 1
exit $rc
