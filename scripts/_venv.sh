# Sourced by the other scripts: make sure .venv/ exists at the repo root with
# requirements.txt installed, then activate it. Re-installs when requirements.txt
# changes (a hash of it is kept in .venv/.requirements.sha256).
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO_ROOT/.venv"
PYTHON_BIN=python3
want_hash="$(sha256sum "$REPO_ROOT/requirements.txt" | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating $VENV" >&2
    "$PYTHON_BIN" -m venv "$VENV"
fi
if [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$want_hash" ]; then
    echo "[setup] installing requirements into $VENV (first run takes about a minute)" >&2
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    # torch==2.13.0 is named in the same command as everything else, so that no
    # dependency can pull a multi-GB CUDA build of torch onto a CPU machine.
    "$VENV/bin/python" -m pip install --quiet torch==2.13.0 -r "$REPO_ROOT/requirements.txt"
    echo "$want_hash" > "$VENV/.requirements.sha256"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
# the repo's modules import from anywhere; the caller's directory stays, so relative paths mean what they say
export PYTHONPATH="$REPO_ROOT${PYTHONPATH:+:$PYTHONPATH}"
