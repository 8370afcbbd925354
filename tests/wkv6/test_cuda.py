"""Our CUDA kernel: it compiles with the machine's nvcc (CPU machines too), its backward
algorithm is right (a float64 transcription of the kernel's passes, run on CPU), and on a
GPU (marker `gpu`) it matches the float64 reference on y, the final state and all gradients."""

import re
import shutil
import subprocess
import sysconfig

import pytest
import torch

from src.wkv6 import wkv6
from src.wkv6 import cuda as wkv6_cuda
from src.wkv6.naive import wkv6_naive
from tests.helpers import output_and_grads, rel_err, wkv_inputs

NAMES = ["y", "final_state", "grad_r", "grad_k", "grad_v", "grad_w", "grad_u", "grad_state"]
NVCC = shutil.which("nvcc")
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc not found on PATH: the CUDA compile check needs the CUDA toolkit")


# ------------------------------------------------------------------ compile checks (no GPU needed)

@needs_nvcc
@pytest.mark.parametrize("arch", ["80", "90"])
def test_kernel_compiles_with_nvcc(tmp_path, arch):
    from torch.utils.cpp_extension import COMMON_NVCC_FLAGS
    obj = tmp_path / "wkv6_cuda.o"
    cmd = [NVCC, "-c", str(wkv6_cuda.CUDA_DIR / "wkv6_cuda.cu"), "-o", str(obj), "-std=c++20",
           f"-gencode=arch=compute_{arch},code=sm_{arch}", *COMMON_NVCC_FLAGS,
           *wkv6_cuda.nvcc_flags(64, 4096), "-Xptxas=-v"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    spills = re.findall(r"(\d+) bytes spill stores", result.stderr)
    assert len(spills) == 3, result.stderr                       # forward + the two backward passes
    assert all(s == "0" for s in spills), "registers spill to local memory:\n" + result.stderr


@pytest.mark.slow
@needs_nvcc
def test_binding_compiles_and_links_to_the_kernel(tmp_path):
    """The .cpp binding compiles against torch's headers and every kernel symbol it calls is
    defined by the .cu object with the same (mangled) signature."""
    from torch.utils.cpp_extension import COMMON_NVCC_FLAGS, include_paths
    cu_obj, cpp_obj = tmp_path / "wkv6_cuda.o", tmp_path / "wkv6_op.o"
    nvcc = subprocess.run([NVCC, "-c", str(wkv6_cuda.CUDA_DIR / "wkv6_cuda.cu"), "-o", str(cu_obj),
                           "-std=c++20", "-gencode=arch=compute_90,code=sm_90", *COMMON_NVCC_FLAGS,
                           *wkv6_cuda.nvcc_flags(64, 4096)], capture_output=True, text=True)
    assert nvcc.returncode == 0, nvcc.stderr
    includes = [f"-I{p}" for p in include_paths()] + [f"-I{sysconfig.get_paths()['include']}"]
    # nvcc drives the host compiler here only to add the CUDA toolkit's include directory
    cxx = subprocess.run([NVCC, "-c", "-x", "c++", "-std=c++20", "-Xcompiler=-fPIC", "-O1", *includes,
                          *wkv6_cuda.defines(64, 4096),
                          "-DTORCH_EXTENSION_NAME=wkv6_check", str(wkv6_cuda.CUDA_DIR / "wkv6_op.cpp"),
                          "-o", str(cpp_obj)], capture_output=True, text=True)
    assert cxx.returncode == 0, cxx.stderr

    def symbols(obj, *flags):
        out = subprocess.run(["nm", *flags, str(obj)], capture_output=True, text=True, check=True).stdout
        return {line.split()[-1] for line in out.splitlines() if line.strip()}

    wanted = {s for s in symbols(cpp_obj, "-u") if "wkv6_cuda" in s}
    assert len(wanted) == 2, wanted
    assert wanted <= symbols(cu_obj, "--defined-only"), "binding and kernel disagree on a signature"


def test_t_bucket():
    assert wkv6_cuda.t_bucket(1) == 4096 and wkv6_cuda.t_bucket(4096) == 4096
    assert wkv6_cuda.t_bucket(4097) == 8192 and wkv6_cuda.t_bucket(20000) == 32768
    assert wkv6_cuda.extension_name(64, 4096) == "rwkv6_wkv6_n64_t4096"


# ------------------------------------------------------------------ the kernel's algorithm, on CPU

def kernel_algorithm(r, k, v, w, u, s0, gy, gsT):
    """The computation of cuda/wkv6_cuda.cu, pass for pass, in float64 and vectorised over
    the threads of a block: forward, then the forward-in-time backward pass (gr, r*A, phi_T,
    gu) and the reverse pass (gk, gv, gw via the phi recurrence, g_state)."""
    B, T, C = r.shape
    H, N = u.shape
    r, k, v, w, gy = (x.view(B, T, H, N) for x in (r, k, v, w, gy))
    a = -torch.exp(w)
    d = torch.exp(a)
    S = s0.clone()                                       # [b, h, key j, value i]
    y = torch.empty(B, T, H, N, dtype=torch.float64)
    for t in range(T):
        kv = k[:, t, :, :, None] * v[:, t, :, None, :]
        y[:, t] = torch.einsum("bhj,bhji->bhi", r[:, t], u[None, :, :, None] * kv + S)
        S = S * d[:, t, :, :, None] + kv
    sT = S
    # pass 1, forward in time, thread j holds S[j, :]
    S = s0.clone()
    gr = torch.empty_like(r)
    rA = torch.empty_like(r)
    gu = torch.zeros(B, H, N, dtype=torch.float64)
    for t in range(T):
        A = torch.einsum("bhji,bhi->bhj", S, gy[:, t])
        vg = (v[:, t] * gy[:, t]).sum(-1, keepdim=True)
        gr[:, t] = u * k[:, t] * vg + A
        rA[:, t] = r[:, t] * A
        gu += r[:, t] * k[:, t] * vg
        S = S * d[:, t, :, :, None] + k[:, t, :, :, None] * v[:, t, :, None, :]
    phi = (gsT * S).sum(-1)
    # pass 2, backwards in time: dS rows (gk, gw, g_state) and dS columns (gv)
    dS = gsT.clone()
    gk, gv, gw = torch.empty_like(r), torch.empty_like(r), torch.empty_like(r)
    for t in reversed(range(T)):
        Bq = torch.einsum("bhji,bhi->bhj", dS, v[:, t])
        vg = (v[:, t] * gy[:, t]).sum(-1, keepdim=True)
        gk[:, t] = u * r[:, t] * vg + Bq
        grad_a = phi - k[:, t] * Bq
        gw[:, t] = grad_a * a[:, t]
        phi = grad_a + rA[:, t]
        gv[:, t] = torch.einsum("bhj,bhji->bhi", k[:, t], u[None, :, :, None] * r[:, t, :, :, None]
                                * gy[:, t, :, None, :] + dS)
        dS = dS * d[:, t, :, :, None] + r[:, t, :, :, None] * gy[:, t, :, None, :]
    flat = lambda x: x.reshape(B, T, C)
    return flat(y), sT, flat(gr), flat(gk), flat(gv), flat(gw), gu.sum(0), dS


@pytest.mark.parametrize("B,T,H,N", [(1, 1, 1, 8), (2, 23, 2, 16), (1, 64, 2, 64)])
def test_kernel_algorithm_equals_autograd_of_the_reference(B, T, H, N):
    inputs = wkv_inputs(B, T, H, N, seed=T)
    ref = output_and_grads(wkv6_naive, inputs)
    g = torch.Generator().manual_seed(1)     # the cotangents output_and_grads drew
    gy = torch.randn(ref[0].shape, generator=g).to(torch.bfloat16).double()
    gsT = torch.randn(ref[1].shape, generator=g).to(torch.bfloat16).double()
    got = kernel_algorithm(*[x.detach() for x in inputs], gy, gsT)
    for name, a, b in zip(NAMES, got, ref):
        assert rel_err(a, b) < 1e-10, f"{name}: {rel_err(a, b):.2e}"


# ------------------------------------------------------------------ on a GPU

gpu = pytest.mark.gpu
needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU: the kernel runs only on one")

GPU_CASES = [(8, 1, 40), (4, 17, 40), (8, 512, 8), (2, 512, 40), (2, 4096, 4)]


@gpu
@needs_gpu
@pytest.mark.parametrize("B,T,H", GPU_CASES)
@pytest.mark.parametrize("state_grad", [True, False])
def test_cuda_matches_float64_reference(B, T, H, state_grad):
    inputs = wkv_inputs(B, T, H, dtype=torch.bfloat16, device="cuda", seed=T + H)
    got = output_and_grads(lambda *a: wkv6(*a, backend="cuda"), inputs, state_grad=state_grad)
    exact = [x.detach().double().requires_grad_() for x in inputs]   # the same bf16 values, in float64
    ref = output_and_grads(lambda *a: wkv6(*a, backend="naive"), exact, state_grad=state_grad)
    assert got[0].dtype == torch.bfloat16 and got[1].dtype == torch.float32
    for name, a, b in zip(NAMES, got, ref):
        assert torch.isfinite(a).all(), name
        assert rel_err(a, b) < 2e-2, f"{name}: relative error {rel_err(a, b):.2e} at B={B} T={T} H={H}"


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
