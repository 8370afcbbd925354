"""Our CUDA kernel: it compiles with the machine's nvcc (CPU machines too); its own source, built
for the CPU (backend "cuda_emulated"), matches the float64 reference on y, the final state and
all gradients; on a GPU (marker `gpu`) the real build does too."""

import re
import shutil
import subprocess
import sysconfig

import pytest
import torch

from src.wkv6 import wkv6
from src.wkv6 import cuda as wkv6_cuda
from tests.helpers import output_and_grads, rel_err, wkv_inputs

NAMES = ["y", "final_state", "grad_r", "grad_k", "grad_v", "grad_w", "grad_u", "grad_state"]
NVCC = shutil.which("nvcc")
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc not found on PATH: the CUDA compile check needs the CUDA toolkit")


# ------------------------------------------------------------------ compile checks (no GPU needed)

@needs_nvcc
@pytest.mark.parametrize("arch", [pytest.param("80", marks=pytest.mark.slow), "90"])
def test_kernel_compiles_with_nvcc(tmp_path, arch):
    from torch.utils.cpp_extension import COMMON_NVCC_FLAGS
    obj = tmp_path / "wkv6_cuda.o"
    cmd = [NVCC, "-c", str(wkv6_cuda.CUDA_DIR / "wkv6_cuda.cu"), "-o", str(obj), "-std=c++20",
           f"-gencode=arch=compute_{arch},code=sm_{arch}", *COMMON_NVCC_FLAGS,
           *wkv6_cuda.nvcc_flags(64), "-Xptxas=-v"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    spills = re.findall(r"(\d+) bytes spill stores", result.stderr)
    assert len(spills) == 3, result.stderr                       # forward + the two backward passes
    assert all(s == "0" for s in spills), "registers spill to local memory:\n" + result.stderr


@pytest.mark.slow
@needs_nvcc
@pytest.mark.parametrize("kernel", ["wkv6", "wkv7"])
def test_binding_compiles_and_links_to_the_kernel(tmp_path, kernel):
    """The .cpp binding compiles against torch's headers and every kernel symbol it calls is
    defined by the .cu object with the same (mangled) signature (RWKV-6's kernel and RWKV-7's)."""
    from torch.utils.cpp_extension import COMMON_NVCC_FLAGS, include_paths
    cu_obj, cpp_obj = tmp_path / f"{kernel}_cuda.o", tmp_path / f"{kernel}_op.o"
    nvcc = subprocess.run([NVCC, "-c", str(wkv6_cuda.CUDA_DIR / f"{kernel}_cuda.cu"), "-o", str(cu_obj),
                           "-std=c++20", "-gencode=arch=compute_90,code=sm_90", *COMMON_NVCC_FLAGS,
                           *wkv6_cuda.nvcc_flags(64)], capture_output=True, text=True)
    assert nvcc.returncode == 0, nvcc.stderr
    includes = [f"-I{p}" for p in include_paths()] + [f"-I{sysconfig.get_paths()['include']}"]
    # nvcc drives the host compiler here only to add the CUDA toolkit's include directory
    cxx = subprocess.run([NVCC, "-c", "-x", "c++", "-std=c++20", "-Xcompiler=-fPIC", "-O1", *includes,
                          *wkv6_cuda.defines(64),
                          f"-DTORCH_EXTENSION_NAME={kernel}_check", str(wkv6_cuda.CUDA_DIR / f"{kernel}_op.cpp"),
                          "-o", str(cpp_obj)], capture_output=True, text=True)
    assert cxx.returncode == 0, cxx.stderr

    def symbols(obj, *flags):
        out = subprocess.run(["nm", *flags, str(obj)], capture_output=True, text=True, check=True).stdout
        return {line.split()[-1] for line in out.splitlines() if line.strip()}

    wanted = {s for s in symbols(cpp_obj, "-u") if f"{kernel}_cuda" in s}
    assert len(wanted) == 2, wanted
    assert wanted <= symbols(cu_obj, "--defined-only"), "binding and kernel disagree on a signature"


# ------------------------------------------------------------------ the kernel's source on the CPU

def tolerance(t: torch.Tensor) -> float:
    """bf16 results carry bf16's rounding (half an ulp: 2^-8 of the largest value); fp32 ones, fp32's."""
    return 5e-3 if t.dtype == torch.bfloat16 else 1e-5


def check_against_float64(backend: str, B: int, T: int, H: int, state_grad: bool, device: str = "cpu") -> None:
    inputs = wkv_inputs(B, T, H, dtype=torch.bfloat16, device=device, seed=T + H)
    got = output_and_grads(lambda *a: wkv6(*a, backend=backend), inputs, state_grad=state_grad)
    exact = [x.detach().double().requires_grad_() for x in inputs]   # the same bf16 values, in float64
    ref = output_and_grads(lambda *a: wkv6(*a, backend="naive"), exact, state_grad=state_grad)
    assert got[0].dtype == torch.bfloat16 and got[1].dtype == torch.float32
    for name, a, b in zip(NAMES, got, ref):
        assert torch.isfinite(a).all(), name
        assert rel_err(a, b) < tolerance(a), f"{name}: relative error {rel_err(a, b):.2e} at B={B} T={T} H={H}"


def test_cuda_source_on_the_cpu_matches_float64():
    check_against_float64("cuda_emulated", 1, 17, 2, state_grad=True)


@pytest.mark.slow
@pytest.mark.parametrize("B,T,H", [(2, 1, 3), (1, 17, 1), (3, 64, 2), (2, 257, 2)])
@pytest.mark.parametrize("state_grad", [True, False])
def test_cuda_source_on_the_cpu_matches_float64_everywhere(B, T, H, state_grad):
    check_against_float64("cuda_emulated", B, T, H, state_grad)


def test_cuda_source_on_the_cpu_without_initial_state():
    r, k, v, w, u, _ = wkv_inputs(1, 9, 1, dtype=torch.bfloat16, with_state=False)
    y, s = wkv6(r, k, v, w, u, backend="cuda_emulated")
    y_ref, s_ref = wkv6(*(x.detach().double() for x in (r, k, v, w, u)), backend="naive")
    assert rel_err(y, y_ref) < 5e-3 and rel_err(s, s_ref) < 1e-5
    with pytest.raises(ValueError, match=r"wkv6\(backend='cuda_emulated'\): the inputs have dtype torch.float32"):
        wkv6(r.float(), k.float(), v.float(), w.float(), u, backend="cuda_emulated")


# ------------------------------------------------------------------ on a GPU

gpu = pytest.mark.gpu
needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU: the kernel runs only on one")

GPU_CASES = [(8, 1, 40), (4, 17, 40), (8, 512, 8), (2, 512, 40), (2, 4096, 4)]


@gpu
@needs_gpu
@pytest.mark.parametrize("B,T,H", GPU_CASES)
@pytest.mark.parametrize("state_grad", [True, False])
def test_cuda_matches_float64_reference(B, T, H, state_grad):
    check_against_float64("cuda", B, T, H, state_grad, device="cuda")


@gpu
@needs_gpu
def test_cuda_is_the_default_for_bf16_on_gpu():
    r, k, v, w, u, _ = wkv_inputs(1, 8, 2, dtype=torch.bfloat16, device="cuda", with_state=False)
    y_auto, _ = wkv6(r, k, v, w, u)
    y_cuda, _ = wkv6(r, k, v, w, u, backend="cuda")
    assert torch.equal(y_auto, y_cuda)


@gpu
@needs_gpu
def test_cuda_rejects_fp32():
    r, k, v, w, u, _ = wkv_inputs(1, 8, 2, dtype=torch.float32, device="cuda", with_state=False)
    with pytest.raises(ValueError, match="expected torch.bfloat16"):
        wkv6(r, k, v, w, u, backend="cuda")
