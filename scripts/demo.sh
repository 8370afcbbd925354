#!/usr/bin/env bash
# The main job on its embedded default: a tiny random RWKV-6 (--model rwkv7: RWKV-7) and the sample data;
# trains Bone on the CPU, shows the loss falling, merges into a plain .pth and checks it against base + adapter (about a minute).
# Creates .venv/ with the requirements on first use. Extra flags go to `python -m src.demo`.
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
cd "$REPO_ROOT"
exec python -m src.demo "$@"
