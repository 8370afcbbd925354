#!/usr/bin/env bash
# export.py's peak memory and time on a 1.5B-shaped random checkpoint (CPU); writes its section of
# docs/benchmarks.md.
#   bash scripts/bench_export.sh
#   bash scripts/bench_export.sh --model 3b --work_dir /tmp/bench
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
cd "$REPO_ROOT"
exec python -m src.bench.export --write docs/benchmarks.md "$@"
