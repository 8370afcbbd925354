#!/usr/bin/env bash
# Everything that needs a GPU for the WKV6 kernel, in one go, on a machine whose Python
# already has torch (CUDA), ninja and pytest (the lent device machine does; no .venv there):
#   1. the GPU kernel tests (cuda vs the float64 reference, y and all gradients),
#   2. the kernel benchmark beside fla's chunk_rwkv6, written into docs/benchmarks.md.
# Wheels for what that machine lacks (fla-core, einops, rwkv, ...) may be carried in .whl/.
# Logs go to docs/ and, when $OUT is set, are copied there too.
set -euo pipefail
cd "$(dirname "$0")/.."
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee docs/gpu-tests.log
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a docs/gpu-tests.log
python3 -m pytest -m gpu tests/wkv6/test_cuda.py -v -p no:cacheprovider 2>&1 | tee -a docs/gpu-tests.log
python3 -m src.bench_wkv --device cuda --write docs/benchmarks.md 2>&1 | tee docs/bench-wkv-gpu.log
if [ -n "${OUT:-}" ]; then cp docs/gpu-tests.log docs/bench-wkv-gpu.log docs/benchmarks.md "$OUT"/; fi
