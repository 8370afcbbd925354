"""Our WKV6 CUDA kernel (cuda/wkv6_cuda.cu + cuda/wkv6_op.cpp): build on first use, autograd wrapper.

The extension is compiled with torch.utils.cpp_extension.load (ninja) into torch's
extension cache, one build per (head size, T bucket); the bucket is the next power of
two >= T, at least 4096, so ordinary context lengths share one build.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..utils.paths import CUDA_SOURCES as CUDA_DIR
SOURCES = (CUDA_DIR / "wkv6_op.cpp", CUDA_DIR / "wkv6_cuda.cu")
MIN_T_BUCKET = 4096
SUPPORTED_HEAD_SIZES = tuple(range(4, 129, 4))

_built: dict[tuple[int, int], object] = {}   # (head size, T bucket) -> loaded extension module


def t_bucket(T: int) -> int:
    return max(MIN_T_BUCKET, 1 << max(0, T - 1).bit_length())


def extension_name(head_size: int, max_t: int) -> str:
    return f"rwkv6_wkv6_n{head_size}_t{max_t}"


def defines(head_size: int, max_t: int) -> list[str]:
    return [f"-D_N_={head_size}", f"-D_MAX_T_={max_t}"]


def nvcc_flags(head_size: int, max_t: int) -> list[str]:
    # No --use_fast_math: the exp(-exp(w)) decay keeps full fp32 accuracy.
    return ["-O3", "-Xptxas=-O3", "--extra-device-vectorization", *defines(head_size, max_t)]


def load_kernel(head_size: int, max_t: int, build_directory: str | None = None, verbose: bool = False):
    """Compile (first call) or load the extension for this head size and T bucket."""
    key = (head_size, max_t)
    if key not in _built:
        from torch.utils.cpp_extension import load
        name = extension_name(head_size, max_t)
        if build_directory is not None:
            Path(build_directory).mkdir(parents=True, exist_ok=True)
        _built[key] = load(
            name=name,
            sources=[str(s) for s in SOURCES],
            extra_cflags=["-O3", *defines(head_size, max_t)],
            extra_cuda_cflags=nvcc_flags(head_size, max_t),
            build_directory=build_directory,
            verbose=verbose,
        )
    return _built[key]


class WKV6CudaFunction(torch.autograd.Function):
    """r, k, v, w: (B, T, C) bf16 contiguous CUDA; u: (H, N) fp32; state: (B, H, N, N) fp32 or None."""

    @staticmethod
    def forward(ctx, r, k, v, w, u, state, kernel):
        stream = torch.cuda.current_stream(r.device).cuda_stream
        y, final_state = kernel.forward(r, k, v, w, u, state, stream)
        ctx.kernel = kernel
        ctx.has_state = state is not None
        ctx.save_for_backward(r, k, v, w, u, *([state] if state is not None else []))
        ctx.set_materialize_grads(False)
        return y, final_state

    @staticmethod
    def backward(ctx, gy, g_final_state):
        r, k, v, w, u, *rest = ctx.saved_tensors
        state = rest[0] if ctx.has_state else None
        if gy is None:
            gy = torch.zeros_like(r)
        gy = gy.to(torch.bfloat16).contiguous()
        if g_final_state is not None:
            g_final_state = g_final_state.float().contiguous()
        stream = torch.cuda.current_stream(r.device).cuda_stream
        with torch.cuda.device(r.device):
            gr, gk, gv, gw, gu, g_state = ctx.kernel.backward(r, k, v, w, u, state, gy, g_final_state, stream)
        return gr, gk, gv, gw, gu, (g_state if ctx.has_state else None), None


def wkv6_cuda(r: torch.Tensor, k: torch.Tensor, v: torch.Tensor, w: torch.Tensor, u: torch.Tensor,
              state: torch.Tensor | None = None, build_directory: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """bf16 r, k, v, w in, bf16 y out; u and the states in fp32 (u's gradient comes back in u's dtype)."""
    H, N = u.shape
    with torch.cuda.device(r.device):
        kernel = load_kernel(N, t_bucket(r.shape[1]), build_directory=build_directory)
        r, k, v, w = (x.contiguous() for x in (r, k, v, w))
        u32 = u.float().contiguous()
        s32 = None if state is None else state.float().contiguous()
        return WKV6CudaFunction.apply(r, k, v, w, u32, s32, kernel)
