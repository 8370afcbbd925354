#!/usr/bin/env bash
# Everything that needs a GPU, in stages that each fit a 10-minute call, on a machine whose Python
# already has torch (CUDA), lightning, ninja and pytest (the lent device machine does; no .venv there):
#   bash scripts/gpu_session.sh kernel   # WKV6 kernel tests (cuda vs float64 reference) + kernel benchmark
#   bash scripts/gpu_session.sh table0   # issue 5's table, no gradient checkpointing (3B, ctx 512, micro batch 1)
#   bash scripts/gpu_session.sh table1   # the same with gradient checkpointing
#   bash scripts/gpu_session.sh scale    # Bone and LoRA on 3B at ctx 4096, micro batch 8: tokens/s and MFU
#   bash scripts/gpu_session.sh all      # all of them (about 30 minutes)
# Wheels for what the machine lacks (deepspeed + hjson, pydantic, pydantic_core, annotated_types,
# typing_inspection, typing_extensions; fla-core, einops, rwkv, matplotlib) may be carried in .whl/.
# The random 3B base and the token file are made once in .bench/ (git-ignored) and reused while
# the machine stays warm. Results: docs/benchmarks.md, docs/bench/, logs in docs/; copies in $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1
stage="${1:-all}"
bench() { python3 -m src.bench --work_dir .bench "$@" 2>&1 | tee -a docs/bench-table-gpu.log; }
case "$stage" in
    kernel|all)
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee docs/gpu-tests.log
        python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a docs/gpu-tests.log
        python3 -m pytest -m gpu tests/wkv6/test_cuda.py -v -p no:cacheprovider 2>&1 | tee -a docs/gpu-tests.log
        python3 -m src.bench_wkv --device cuda --write docs/benchmarks.md 2>&1 | tee docs/bench-wkv-gpu.log ;;&
    table0|all) bench --grad_cp 0 ;;&
    table1|all) bench --grad_cp 1 ;;&
    scale|all) bench --methods "" --scale ;;
    kernel|table0|table1) ;;
    *) echo "usage: bash scripts/gpu_session.sh kernel|table0|table1|scale|all" >&2; exit 2 ;;
esac
if [ -n "${OUT:-}" ]; then cp -r docs/benchmarks.md docs/bench docs/*.log "$OUT"/ 2>/dev/null || true; fi
