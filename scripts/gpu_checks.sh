#!/usr/bin/env bash
# Everything that needs a GPU: the WKV6 kernel's tests against the float64 reference, then the GPU
# benchmarks, whose results go into docs/ (commit them with the machine they ran on).
#
#   bash scripts/gpu_checks.sh [--python PYTHON] STAGE
#     kernel   GPU kernel tests (-m gpu) -> docs/gpu-tests.log; the WKV6, one-adapted-layer and trainer-vs-plain-loop
#              benchmarks -> docs/benchmarks.md
#     table0   the LoRA / Bone / Bat table on 3B without gradient checkpointing (ctx 512, micro batch 1)
#     table1   the same with gradient checkpointing
#     scale    Bone and LoRA on 3B at ctx 4096, micro batch 8: tokens/s and MFU
#     all      every stage in turn (about half an hour on one H100)
#
# --python: a Python that has torch with CUDA, lightning, deepspeed, ninja and pytest (default: the
# repository's .venv/, created as for the other scripts). Each table stage makes a random 3B base once
# in .bench/ and reuses it. fla's chunk_rwkv6 joins the WKV6 benchmark when fla-core is installed.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python=""
if [ "${1:-}" = "--python" ]; then
    python="${2:?--python needs a path}"
    shift 2
fi
stage="${1:-}"
case "$stage" in
    kernel|table0|table1|scale|all) ;;
    *) echo "usage: bash scripts/gpu_checks.sh [--python PYTHON] kernel|table0|table1|scale|all" >&2; exit 2 ;;
esac
if [ -z "$python" ]; then
    source "$REPO_ROOT/scripts/_venv.sh"
    python=python
fi
cd "$REPO_ROOT"
export PYTHONPATH="$REPO_ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if ! "$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_checks.sh: $python sees no CUDA GPU (torch.cuda.is_available() is False)" >&2
    exit 2
fi
table() { "$python" -m src.bench.table --work_dir .bench "$@" 2>&1 | tee -a docs/bench-table-gpu.log; }
if [ "$stage" = kernel ] || [ "$stage" = all ]; then
    {
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
        "$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
        "$python" -m pytest -m gpu tests/wkv6/test_cuda.py tests/wkv7/test_cuda.py -v -p no:cacheprovider
    } 2>&1 | tee docs/gpu-tests.log
    "$python" -m src.bench.wkv --device cuda --write docs/benchmarks.md 2>&1 | tee docs/bench-wkv-gpu.log
    "$python" -m src.bench.wkv --op wkv7 --device cuda --write docs/benchmarks.md 2>&1 | tee docs/bench-wkv7-gpu.log
    "$python" -m src.bench.adapters --device cuda --write docs/benchmarks.md 2>&1 | tee docs/bench-adapters-gpu.log
    "$python" -m src.bench.trainer --device cuda --work_dir .bench --write docs/benchmarks.md 2>&1 \
        | tee docs/bench-trainer-gpu.log
fi
if [ "$stage" = table0 ] || [ "$stage" = all ]; then table --grad_cp 0; fi
if [ "$stage" = table1 ] || [ "$stage" = all ]; then table --grad_cp 1; fi
if [ "$stage" = scale ] || [ "$stage" = all ]; then table --methods "" --scale; fi
