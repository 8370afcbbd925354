#!/usr/bin/env bash
# Loss and perplexity of a model (base, merged, or base + adapter / state) on binidx data
# (python eval.py --help for all flags):
#   bash scripts/eval.sh --model rwkv6-3b.pth --adapter out/bone --data data/held_out --ctx_len 1024
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
exec python "$REPO_ROOT/eval.py" "$@"
