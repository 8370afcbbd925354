#!/usr/bin/env bash
# The test suite. Creates .venv/ with the requirements on first use.
#   bash scripts/test.sh              # everything (GPU tests skip themselves without a GPU)
#   bash scripts/test.sh -m gpu       # only the GPU kernel tests (on a machine with a GPU)
#   bash scripts/test.sh tests/test_model.py -k pip
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
cd "$REPO_ROOT"
exec python -m pytest "$@"
