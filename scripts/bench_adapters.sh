#!/usr/bin/env bash
# One adapted layer per method (LoRA, PiSSA, Bone, Bat in/out/materialised, DiSHA) at RWKV6-3B's shapes,
# forward + backward beside the plain frozen linear; writes its section of docs/benchmarks.md.
#   bash scripts/bench_adapters.sh                  # CPU, fp32
#   bash scripts/bench_adapters.sh --device cuda    # GPU, bf16
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
cd "$REPO_ROOT"
exec python -m src.bench.adapters --write docs/benchmarks.md "$@"
