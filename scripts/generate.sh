#!/usr/bin/env bash
# Generate text, or chat, with a model (base, merged, or base + adapter / state)
# (python generate.py --help for all flags):
#   bash scripts/generate.sh --model rwkv6-3b.pth --prompt "Once upon a time" --temperature 0
#   bash scripts/generate.sh --model rwkv6-3b.pth --adapter out/bone --chat
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
exec python "$REPO_ROOT/generate.py" "$@"
