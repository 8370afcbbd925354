#!/usr/bin/env bash
# The preference and reward tuning demonstration on a tiny model (CPU, a few minutes): DPO's preference
# accuracy and GRPO's reward and KL over the steps, drawn into docs/bench/align-curves.png (and .csv).
#   bash scripts/bench_align.sh
#   bash scripts/bench_align.sh --family x060 --work_dir /tmp/align
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
cd "$REPO_ROOT"
exec python -m src.bench.align "$@"
