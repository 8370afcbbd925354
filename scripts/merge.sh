#!/usr/bin/env bash
# Merge an adapter into its base model, writing a plain .pth of its family (python merge.py --help for all flags):
#   bash scripts/merge.sh --base rwkv6-3b.pth --bone out/bone --output rwkv6-3b-bone.pth --check
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
exec python "$REPO_ROOT/merge.py" "$@"
