#!/usr/bin/env bash
# infctx memory: what one training sample's forward keeps for the backward, whole and in chunks of
# --chunk_ctx tokens, for growing ctx_len (tiny preset, fp32, CPU); writes its section of docs/benchmarks.md.
#   bash scripts/bench_infctx.sh
#   bash scripts/bench_infctx.sh --ctx_lens 512,8192,32768 --chunk_ctx 512 --whole_up_to 8192
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
cd "$REPO_ROOT"
exec python -m src.bench.infctx --write docs/benchmarks.md "$@"
