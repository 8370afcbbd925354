#!/usr/bin/env bash
# The trainer's cost per step: train.py beside a plain PyTorch loop on the same model, adapter and samples,
# in alternating pairs; writes its section of docs/benchmarks.md.
#   bash scripts/bench_trainer.sh                   # CPU: tiny preset, Bone r16, fp32, ctx 256 x 2
#   bash scripts/bench_trainer.sh --device cuda     # GPU: 0.1b preset, bf16
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
cd "$REPO_ROOT"
exec python -m src.bench.trainer --write docs/benchmarks.md "$@"
