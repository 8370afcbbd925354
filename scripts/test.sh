#!/usr/bin/env bash
# The tests. Creates .venv/ with the requirements on first use.
#   bash scripts/test.sh              # the fast tier (-m "not slow"): every module, under 90 s on 2 cores
#   bash scripts/test.sh --all        # everything (GPU tests skip themselves without a GPU); what CI runs
#   bash scripts/test.sh -m gpu       # only the GPU kernel tests (on a machine with a GPU)
#   bash scripts/test.sh tests/model -k pip
# Other flags go to pytest.
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
cd "$REPO_ROOT"
if [ "${1:-}" = "--all" ]; then
    shift
    exec python -m pytest "$@"
fi
exec python -m pytest -m "not slow" "$@"
