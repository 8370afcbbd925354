#!/usr/bin/env bash
# GRPO rollouts: G completions of one prompt sampled together from the shared prompt state
# (src/align/rollout.py) against one after another with generate_tokens: tokens/s, the speed-up, and
# whether the completions are the same; writes its section of docs/benchmarks.md.
#   bash scripts/bench_rollout.sh
#   bash scripts/bench_rollout.sh --model rwkv7-1.5b --group_size 16 --max_new_tokens 256 --device cuda
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
cd "$REPO_ROOT"
exec python -m src.bench.rollout --write docs/benchmarks.md "$@"
