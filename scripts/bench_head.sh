#!/usr/bin/env bash
# The head and the loss in chunks (--head_chunk): a training step's peak memory and time with the
# (T, vocab) logits whole and a chunk at a time (tiny preset, fp32, CPU); writes its section of
# docs/benchmarks.md.
#   bash scripts/bench_head.sh
#   bash scripts/bench_head.sh --ctx_lens 1024,4096 --head_chunk 512 --model rwkv7-tiny
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
cd "$REPO_ROOT"
exec python -m src.bench.head --write docs/benchmarks.md "$@"
