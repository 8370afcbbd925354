#!/usr/bin/env bash
# jsonl -> binidx (RWKV World tokenizer):  bash scripts/make_data.sh INPUT.jsonl OUT_PREFIX
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
exec python -m src.data.make_data "$@"
