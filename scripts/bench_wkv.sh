#!/usr/bin/env bash
# WKV6 backends side by side; writes the table into docs/benchmarks.md.
#   bash scripts/bench_wkv.sh                  # CPU (naive vs chunked)
#   bash scripts/bench_wkv.sh --device cuda    # GPU (cuda vs chunked vs fla chunk_rwkv6)
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
cd "$REPO_ROOT"
exec python -m src.bench.wkv --write docs/benchmarks.md "$@"
