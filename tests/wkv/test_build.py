"""src/wkv/build.py: what a build is keyed by (kernel, target, head size), the cache that compiles each
key once, the kernel files each operator names; and that the two operators' real builds are kept apart."""

import pytest
import torch

from src.wkv.build import BUILDS, CUDA_DIR, Build, BuildCache, KernelSource, SUPPORTED_HEAD_SIZES, defines, nvcc_flags
from src.wkv6 import wkv6
from src.wkv6.cuda import KERNEL as WKV6_KERNEL
from src.wkv7 import wkv7
from src.wkv7.cuda import KERNEL as WKV7_KERNEL
from tests.helpers import wkv_inputs


def test_each_operator_names_its_files_in_cuda():
    for kernel in (WKV6_KERNEL, WKV7_KERNEL):
        assert all(p.is_file() for p in (*kernel.extension_sources, kernel.host_source)), kernel
    assert WKV6_KERNEL.extension_sources == (CUDA_DIR / "wkv6_op.cpp", CUDA_DIR / "wkv6_cuda.cu")
    assert WKV7_KERNEL.host_source == CUDA_DIR / "wkv7_on_host.cpp"
    assert WKV7_KERNEL.host_function("forward") == "wkv7_host_forward"
    assert f"{WKV6_KERNEL.host_function('backward')}(" in WKV6_KERNEL.host_source.read_text()


def test_builds_differ_by_kernel_target_and_head_size():
    builds = [Build(kernel, target, n) for kernel in (WKV6_KERNEL, WKV7_KERNEL) for target in ("cuda", "host")
              for n in (16, 64)]
    assert len(set(builds)) == len({b.name for b in builds}) == 8          # distinct keys, distinct cache dirs
    assert Build(KernelSource("wkv6"), "host", 64) == Build(WKV6_KERNEL, "host", 64)   # equal by value
    assert Build(WKV7_KERNEL, "cuda", 32).name == "rwkv_wkv7_n32"
    assert Build(WKV7_KERNEL, "host", 32).name == "rwkv_wkv7_on_host_n32"


@pytest.mark.parametrize("target,head_size,message", [("rocm", 64, "target must be one of"),
                                                      ("host", 66, "the kernels are built for"),
                                                      ("cuda", 0, "the kernels are built for")])
def test_a_build_the_kernels_cannot_have(target, head_size, message):
    with pytest.raises(ValueError, match=message):
        Build(WKV6_KERNEL, target, head_size)


def test_the_cache_compiles_each_key_once():
    compiled = []
    cache = BuildCache(compile=lambda build: compiled.append(build) or object())
    a, b = Build(WKV6_KERNEL, "host", 16), Build(WKV7_KERNEL, "host", 16)
    first = cache.load(a)
    assert cache.load(Build(KernelSource("wkv6"), "host", 16)) is first
    assert cache.load(b) is not first and cache.load(Build(WKV6_KERNEL, "host", 32)) is not first
    assert compiled == [a, b, Build(WKV6_KERNEL, "host", 32)]
    assert a in cache and Build(WKV6_KERNEL, "cuda", 16) not in cache


def test_the_head_size_is_a_compile_time_define():
    assert SUPPORTED_HEAD_SIZES == tuple(range(4, 65, 4))
    assert defines(48) == ["-D_N_=48"] and "-D_N_=48" in nvcc_flags(48)
    assert "--use_fast_math" not in nvcc_flags(64)


def test_both_operators_host_builds_are_loaded_apart():
    """The kernel source on the CPU for WKV6 (N = 64) and WKV7 (N = 16): two builds, two libraries."""
    r, k, v, w, u, _ = wkv_inputs(1, 3, 1, N=64, dtype=torch.bfloat16, with_state=False)
    wkv6(r, k, v, w, u, backend="cuda_emulated")
    x = torch.zeros(1, 3, 16, dtype=torch.bfloat16)
    wkv7(x, x, x, x, x, x, head_size=16, backend="cuda_emulated")
    six, seven = Build(WKV6_KERNEL, "host", 64), Build(WKV7_KERNEL, "host", 16)
    assert six in BUILDS and seven in BUILDS
    assert BUILDS.load(six) is not BUILDS.load(seven)
    assert hasattr(BUILDS.load(six), "wkv6_host_forward") and hasattr(BUILDS.load(seven), "wkv7_host_span")
