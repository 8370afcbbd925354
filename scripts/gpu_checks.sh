#!/usr/bin/env bash
# Everything that needs a GPU: the kernels' tests against the float64 reference, then the GPU
# benchmarks, whose results go into docs/ (commit them with the machine they ran on).
#
#   bash scripts/gpu_checks.sh [--python PYTHON] [--rehearse] [--docs DIR] [--work_dir DIR] [--wheels DIR] STAGE
#     quick    the figures that matter most, in this order, each written into the docs as soon as it
#              exists, each step under its own time limit (about 8 minutes in all from a bare machine):
#              the WKV6 and WKV7 kernel tests -> gpu-tests.log; the WKV6 and WKV7 operator benchmarks
#              (beside fla's chunked kernels when fla is there) -> benchmarks.md; the paper's Table 6 rows
#              on 3B (LoRA, Bone, Bat and the materialising Bat, ctx 512, micro batch 1, with and without
#              gradient checkpointing, few steps) -> benchmarks.md and bench/; Bone and LoRA on an nf4
#              base (--quant nf4, bitsandbytes from the wheels) -> the same table; the memory planner
#              beside those measured peaks and the paper's -> benchmarks.md
#     kernel   GPU kernel tests (-m gpu) -> gpu-tests.log; the WKV6, WKV7, one-adapted-layer and
#              trainer-vs-plain-loop benchmarks -> benchmarks.md
#     table0   the LoRA / Bone / Bat table on 3B without gradient checkpointing (ctx 512, micro batch 1)
#     table1   the same with gradient checkpointing
#     scale    Bone and LoRA on 3B at ctx 4096, micro batch 8: tokens/s and MFU
#     all      kernel, table0, table1 and scale in turn (about half an hour on one H100)
#
# --python: a Python that has torch with CUDA, lightning, ninja and pytest (default: the repository's
# .venv/, created as for the other scripts). The wheels in --wheels (default: .whl/, filled by
# bash scripts/gpu_wheels.sh: DeepSpeed, fla-core, ...) are installed into a temporary folder first, for a
# machine without those packages or a network. --docs: where the results go (default: docs).
# --rehearse: the same steps on the CPU, each GPU part replaced by its CPU counterpart (the kernels' own
# source through cuda_emulated, small shapes, the tiny preset; the wheels only checked to install on
# CPython 3.12), so that the script is known to run before a GPU is at hand; use it with --docs elsewhere.
# Each table stage makes a random 3B base once in --work_dir (default: .bench/) and reuses it.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python=""
rehearse=0
docs=docs
work_dir=.bench
wheels=.whl
usage="usage: bash scripts/gpu_checks.sh [--python PYTHON] [--rehearse] [--docs DIR] [--work_dir DIR] [--wheels DIR] quick|kernel|table0|table1|scale|all"
while [ $# -gt 1 ]; do
    case "$1" in
        --python) python="${2:?--python needs a path}"; shift 2 ;;
        --docs) docs="${2:?--docs needs a folder}"; shift 2 ;;
        --work_dir) work_dir="${2:?--work_dir needs a folder}"; shift 2 ;;
        --wheels) wheels="${2:?--wheels needs a folder}"; shift 2 ;;
        --rehearse) rehearse=1; shift ;;
        *) echo "gpu_checks.sh: unknown argument $1; $usage" >&2; exit 2 ;;
    esac
done
stage="${1:-}"
case "$stage" in
    quick|kernel|table0|table1|scale|all) ;;
    *) echo "$usage" >&2; exit 2 ;;
esac
if [ -z "$python" ]; then
    source "$REPO_ROOT/scripts/_venv.sh"
    python=python
fi
cd "$REPO_ROOT"
mkdir -p "$docs/bench" "$work_dir"
export PYTHONPATH="$REPO_ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if ls "$wheels"/*.whl >/dev/null 2>&1; then
    count=$(ls "$wheels"/*.whl | wc -l)
    if [ "$rehearse" = 1 ]; then      # they are for the GPU machine's CPython 3.12: check they would install there
        "$python" -m pip install -q --dry-run --no-index --no-deps --only-binary=:all: --target "$work_dir/site" \
            --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 \
            --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_12_x86_64 \
            --platform manylinux2010_x86_64 "$wheels"/*.whl
        echo "gpu_checks.sh: the $count wheels in $wheels would install on CPython 3.12, x86-64" >&2
    else
        site="$(mktemp -d)"
        trap 'rm -rf "$site"' EXIT
        "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" "$wheels"/*.whl
        export PYTHONPATH="$PYTHONPATH:$site"
        echo "gpu_checks.sh: installed the $count wheels of $wheels into $site" >&2
    fi
fi
if [ "$rehearse" = 1 ]; then
    device=cpu
    echo "gpu_checks.sh: rehearsal on the CPU: every GPU part replaced by its CPU counterpart; results in $docs" >&2
elif "$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    device=cuda
else
    echo "gpu_checks.sh: $python sees no CUDA GPU (torch.cuda.is_available() is False); --rehearse runs the steps on the CPU" >&2
    exit 2
fi

failed=()
# step NAME SECONDS COMMAND...: run under a time limit; a failure is noted and the next step still runs
step() {
    local name="$1" limit="$2"
    shift 2
    local start=$SECONDS
    echo "== gpu_checks.sh: $name (at most ${limit}s)" >&2
    if timeout --signal=TERM --kill-after=20 "$limit" bash -c '"$@"' "$name" "$@"; then
        echo "== gpu_checks.sh: $name done in $((SECONDS - start))s" >&2
    else
        local rc=$?
        echo "== gpu_checks.sh: $name FAILED (status $rc$([ $rc = 124 ] && echo ": over ${limit}s")) after $((SECONDS - start))s" >&2
        failed+=("$name")
    fi
}
kernel_tests() {
    {
        if [ "$device" = cuda ]; then
            nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
            "$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
            "$python" -m pytest -m gpu tests/wkv6/test_cuda.py tests/wkv7/test_cuda.py -v -p no:cacheprovider
        else        # the kernels' own source, compiled for the CPU, against the float64 reference
            "$python" -m pytest tests/wkv6/test_cuda.py tests/wkv7/test_cuda.py -k on_the_cpu -m "not slow" -q -p no:cacheprovider
        fi
    } 2>&1 | tee "$docs/gpu-tests.log"
    return "${PIPESTATUS[0]}"
}
operator_bench() {     # operator_bench wkv6|wkv7
    local small=()
    [ "$device" = cpu ] && small=(--B 1 --T 64 --C 128 --reps 1 --warmup 0)
    "$python" -m src.bench.wkv --op "$1" --device "$device" "${small[@]}" --write "$docs/benchmarks.md" 2>&1 \
        | tee "$docs/bench-$1-$device.log"
    return "${PIPESTATUS[0]}"
}
table() {
    local model=() size=()
    [ "$device" = cpu ] && model=(--model tiny) size=(--steps 2 --warmup 1)
    "$python" -m src.bench.table --device "$device" --work_dir "$work_dir" --out_dir "$docs/bench" \
        --markdown "$docs/benchmarks.md" "${model[@]}" "$@" "${size[@]}" 2>&1 | tee -a "$docs/bench-table-$device.log"
    return "${PIPESTATUS[0]}"
}
plan_check() {     # the memory planner beside the peaks the table measured
    local model=3b
    [ "$device" = cpu ] && model=tiny
    "$python" -m src.plan.against_table --table "$docs/bench/rwkv6-$model-table.csv" --model "$model" \
        --device "$device" --write "$docs/benchmarks.md" 2>&1 | tee "$docs/plan-check-$device.log"
    return "${PIPESTATUS[0]}"
}
export python device docs work_dir
export -f kernel_tests operator_bench table plan_check
if [ "$stage" = quick ]; then          # the limits add up to 8 minutes
    step "kernel tests" 130 kernel_tests
    step "WKV6 operator benchmark" 45 operator_bench wkv6
    step "WKV7 operator benchmark" 45 operator_bench wkv7
    step "Table 6 rows on 3B" 180 table --methods lora,bone,bat_out,bat_materialized --grad_cp 0,1 --steps 8 --warmup 3
    step "quantised-base rows on 3B" 50 table --methods bone_nf4,lora_nf4 --grad_cp 0 --steps 8 --warmup 3
    step "planner against measured peaks" 30 plan_check
fi
if [ "$stage" = kernel ] || [ "$stage" = all ]; then
    step "kernel tests" 600 kernel_tests
    step "WKV6 operator benchmark" 300 operator_bench wkv6
    step "WKV7 operator benchmark" 300 operator_bench wkv7
    step "adapter layer benchmark" 300 "$python" -m src.bench.adapters --device "$device" --write "$docs/benchmarks.md"
    step "trainer benchmark" 600 "$python" -m src.bench.trainer --device "$device" --work_dir "$work_dir" \
        --write "$docs/benchmarks.md"
fi
if [ "$stage" = table0 ] || [ "$stage" = all ]; then step "table without checkpointing" 1800 table --grad_cp 0; fi
if [ "$stage" = table1 ] || [ "$stage" = all ]; then step "table with checkpointing" 1800 table --grad_cp 1; fi
if [ "$stage" = scale ] || [ "$stage" = all ]; then step "scale rows" 1800 table --methods "" --scale; fi
if [ ${#failed[@]} -gt 0 ]; then
    echo "gpu_checks.sh: ${#failed[@]} step(s) failed: ${failed[*]}" >&2
    exit 1
fi
echo "gpu_checks.sh: $stage done in ${SECONDS}s; results in $docs" >&2
