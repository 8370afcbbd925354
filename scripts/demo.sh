#!/usr/bin/env bash
# The main job on its embedded default: a tiny random RWKV6, saved, loaded, run, checked.
# Creates .venv/ with the requirements on first use. Extra flags go to `python -m src.demo`.
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
exec python -m src.demo "$@"
