#!/usr/bin/env bash
# The paper's Table 6 with our trainer (src/bench/table.py): LoRA, Bone, Bat (out, in, materialised), with and
# without gradient checkpointing; CSV + chart in docs/bench/, a section of docs/benchmarks.md.
#   bash scripts/bench_table.sh                                  # GPU: 3B, ctx 512, micro batch 1; CPU: tiny
#   bash scripts/bench_table.sh --model 3b --ctx_len 512 --micro_bsz 1 --steps 30 --scale
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
cd "$REPO_ROOT"
exec python -m src.bench.table "$@"
