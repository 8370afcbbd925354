#!/usr/bin/env bash
# Wheels for a GPU machine that has Python 3.12 with torch (CUDA), lightning, ninja and pytest but no
# network: DeepSpeed (built here, pure Python; its ops compile on the GPU machine when first used) and
# the packages it needs beyond those, fla-core (fla's chunked RWKV kernels, for the operator
# benchmark) and bitsandbytes (the quantised-base row; about 40 MB, left out with --no_bnb). x86-64
# manylinux wheels for CPython 3.12, one version each, into .whl/ (git-ignored). `bash
# scripts/gpu_checks.sh` installs them into a temporary folder at its start when .whl/ holds any.
#
#   bash scripts/gpu_wheels.sh [--no_bnb] [--out DIR]
#
# The versions are this repository's environment's (.venv/), so the GPU machine runs what the tests ran.
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
cd "$REPO_ROOT"
wheel_dir=.whl
bnb=1
while [ $# -gt 0 ]; do
    case "$1" in
        --bnb) bnb=1; shift ;;
        --no_bnb) bnb=0; shift ;;
        --out) wheel_dir="${2:?--out needs a folder}"; shift 2 ;;
        -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu_wheels.sh: unknown argument $1 (usage: bash scripts/gpu_wheels.sh [--no_bnb] [--out DIR])" >&2; exit 2 ;;
    esac
done
version() { python -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$1"; }
mkdir -p "$wheel_dir"
rm -f "$wheel_dir"/*.whl
# DeepSpeed publishes a source distribution only: build its wheel here (ops are compiled where they run)
DS_BUILD_OPS=0 python -m pip wheel --quiet --no-deps --no-build-isolation -w "$wheel_dir" "deepspeed==$(version deepspeed)"
# what DeepSpeed needs beyond torch, numpy, ninja, packaging and tqdm (which the GPU machine has), at
# the versions installed here; fla-core at its newest
wanted=()
for name in hjson msgpack py-cpuinfo pydantic pydantic-core annotated-types typing-inspection einops psutil; do
    wanted+=("$name==$(version "$name")")
done
wanted+=(fla-core)
if [ "$bnb" = 1 ]; then
    if python -c "import bitsandbytes" 2>/dev/null; then wanted+=("bitsandbytes==$(version bitsandbytes)"); else wanted+=(bitsandbytes); fi
fi
python -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$wheel_dir" "${wanted[@]}"
ls -1 "$wheel_dir"
total=$(du -cb "$wheel_dir"/*.whl | tail -1 | cut -f1)
echo "gpu_wheels.sh: $(ls "$wheel_dir"/*.whl | wc -l) wheels, $((total / 1048576)) MiB in $wheel_dir"
