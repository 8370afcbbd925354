#!/usr/bin/env bash
# Export a model (or base + adapter, merged on the fly) into another runtime's format (python export.py --help):
#   bash scripts/export.sh --model out/bone-merged.pth --format st --out bone.st
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
exec python "$REPO_ROOT/export.py" "$@"
