"""Our WKV7 CUDA kernel: it compiles with the machine's nvcc; its own source, built for the CPU
(backend "cuda_emulated"), matches the float64 step-by-step reference on y, the final state and all
seven gradients (r, w, k, v, a, b, the initial state); on a GPU (marker `gpu`) the real build does too."""

import re
import shutil
import subprocess

import pytest
import torch

from src.wkv.build import nvcc_flags
from src.utils.paths import CUDA_SOURCES
from src.wkv7 import wkv7
from tests.helpers import rel_err
from tests.wkv7.test_naive import inputs

NVCC = shutil.which("nvcc")
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc not found on PATH: the CUDA compile check needs the CUDA toolkit")
needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU: the kernel runs only on one")
NAMES = ["y", "final_state", "grad_r", "grad_w", "grad_k", "grad_v", "grad_a", "grad_b", "grad_state"]


@pytest.mark.slow
@needs_nvcc
def test_kernel_compiles_with_nvcc(tmp_path):
    from torch.utils.cpp_extension import COMMON_NVCC_FLAGS
    result = subprocess.run([NVCC, "-c", str(CUDA_SOURCES / "wkv7_cuda.cu"), "-o", str(tmp_path / "wkv7.o"),
                             "-std=c++20", "-gencode=arch=compute_90,code=sm_90", *COMMON_NVCC_FLAGS, *nvcc_flags(64),
                             "-Xptxas=-v"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    spills = re.findall(r"(\d+) bytes spill stores", result.stderr)
    assert len(spills) == 2 and all(s == "0" for s in spills), "registers spill to local memory:\n" + result.stderr


def outputs_and_grads(backend, B, T, H, N, with_state, device="cpu", seed=0):
    """y, the final state and the seven gradients for fixed random cotangents, the inputs rounded to bf16
    for every backend (the reference computes in float64 from the same values)."""
    r, w, k, v, a, b, state = inputs(B=B, T=T, H=H, N=N, seed=seed)
    wide = backend == "naive"
    xs = [x.to(torch.bfloat16).to(torch.float64 if wide else torch.bfloat16).to(device).requires_grad_()
          for x in (r, w, k, v, a, b)]
    s0 = (state.to(torch.float64 if wide else torch.float32).to(device).requires_grad_() if with_state else None)
    y, final = wkv7(*xs, state=s0, head_size=N, backend=backend)
    g = torch.Generator().manual_seed(seed + 1)
    gy = torch.randn(y.shape, generator=g).to(torch.bfloat16).double()    # the kernel takes gy in bf16
    gs = torch.randn(final.shape, generator=g, dtype=torch.float64)
    ((y.double() * gy.to(device)).sum() + (final.double() * gs.to(device)).sum()).backward()
    grads = [x.grad for x in xs] + ([s0.grad] if with_state else [])
    return [t.detach().double().cpu() for t in (y, final, *grads)]


def check_against_float64(backend, B, T, H, N=16, with_state=True, device="cpu"):
    expected = outputs_and_grads("naive", B, T, H, N, with_state)
    actual = outputs_and_grads(backend, B, T, H, N, with_state, device)
    for name, a, e in zip(NAMES, actual, expected):
        # bf16 outputs: rounding of 2^-8 relative; fp32 ones (the states): float accumulation only
        limit = 1e-5 if name in ("final_state",) else 1.5e-2
        assert rel_err(a, e) < limit, (backend, B, T, H, name, rel_err(a, e))


def test_cuda_source_on_the_cpu_matches_float64():
    check_against_float64("cuda_emulated", B=2, T=21, H=2)


@pytest.mark.slow
@pytest.mark.parametrize("B,T,H", [(2, 1, 3), (1, 17, 1), (3, 64, 2), (2, 257, 2)])
@pytest.mark.parametrize("with_state", [True, False])
def test_cuda_source_on_the_cpu_matches_float64_everywhere(B, T, H, with_state):
    check_against_float64("cuda_emulated", B, T, H, N=64 if T == 64 else 16, with_state=with_state)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("B,T,H", [(2, 1, 3), (1, 17, 1), (3, 64, 2), (2, 257, 2), (1, 4096, 2)])
def test_cuda_matches_float64_reference(B, T, H):
    check_against_float64("cuda", B, T, H, N=64, device="cuda")


@pytest.mark.gpu
@needs_gpu
def test_cuda_is_the_default_for_bf16_on_gpu():
    x = torch.zeros(1, 3, 64, device="cuda", dtype=torch.bfloat16)
    y, state = wkv7(x, x, x, x, x, x, head_size=64)
    assert y.dtype == torch.bfloat16 and state.dtype == torch.float32


def test_kernel_backends_refuse_what_the_kernel_cannot_take():
    x = torch.zeros(1, 3, 16)
    with pytest.raises(ValueError, match="expected torch.bfloat16"):
        wkv7(x, x, x, x, x, x, head_size=16, backend="cuda_emulated")
    with pytest.raises(ValueError, match="expected a CUDA device"):
        wkv7(*(x.to(torch.bfloat16),) * 6, head_size=16, backend="cuda")
