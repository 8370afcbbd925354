#!/usr/bin/env bash
# A quantised base (--quant): host memory while loading a 0.4B-shaped checkpoint quantised, beside the
# bf16 base, and a training step's time (CPU); writes its section of docs/benchmarks.md.
#   bash scripts/bench_quant.sh
#   bash scripts/bench_quant.sh --model rwkv7-1.5b --kinds nf4,fp4,int8 --work_dir /tmp/bench
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
cd "$REPO_ROOT"
exec python -m src.bench.quant --write docs/benchmarks.md "$@"
