"""Our WKV6 CUDA kernel (cuda/wkv6_cuda.cu + cuda/wkv6_op.cpp): build on first use, autograd wrapper.

The extension is compiled with torch.utils.cpp_extension.load (ninja) into torch's extension
cache, once per head size. `WKV6KernelFunction` is the autograd function of the kernel, on a
GPU here and on the CPU for cuda_emulated.py (the same kernel source, compiled for the host).
"""

from __future__ import annotations

import contextlib

import torch

from ..utils.cuda_build import SUPPORTED_HEAD_SIZES, build_cuda_extension, defines, nvcc_flags
from ..utils.paths import CUDA_SOURCES as CUDA_DIR

SOURCES = (CUDA_DIR / "wkv6_op.cpp", CUDA_DIR / "wkv6_cuda.cu")
__all__ = ["load_kernel", "run_kernel", "wkv6_cuda", "WKV6KernelFunction", "current_stream", "defines", "nvcc_flags",
           "SOURCES", "SUPPORTED_HEAD_SIZES", "CUDA_DIR"]

_built: dict[int, object] = {}   # head size -> loaded extension module


def extension_name(head_size: int) -> str:
    return f"rwkv6_wkv6_n{head_size}"


def load_kernel(head_size: int, build_directory: str | None = None, verbose: bool = False):
    """Compile (first call) or load the extension for this head size."""
    if head_size not in _built:
        _built[head_size] = build_cuda_extension(extension_name(head_size), SOURCES, head_size, build_directory,
                                                 verbose)
    return _built[head_size]


def current_stream(device: torch.device) -> int:
    """The handle the kernels run on: the current CUDA stream, or 0 on the CPU (emulation)."""
    return torch.cuda.current_stream(device).cuda_stream if device.type == "cuda" else 0


class WKV6KernelFunction(torch.autograd.Function):
    """r, k, v, w: (B, T, C) bf16 contiguous; u: (H, N) fp32; state: (B, H, N, N) fp32 or None.
    `kernel` has forward(r, k, v, w, u, state, stream) -> (y, final_state) and
    backward(r, k, v, w, u, state, gy, g_final_state, stream) -> (gr, gk, gv, gw, gu, g_state)."""

    @staticmethod
    def forward(ctx, r, k, v, w, u, state, kernel):
        y, final_state = kernel.forward(r, k, v, w, u, state, current_stream(r.device))
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
        with torch.cuda.device(r.device) if r.is_cuda else contextlib.nullcontext():
            gr, gk, gv, gw, gu, g_state = ctx.kernel.backward(r, k, v, w, u, state, gy, g_final_state,
                                                              current_stream(r.device))
        return gr, gk, gv, gw, gu, (g_state if ctx.has_state else None), None


WKV6CudaFunction = WKV6KernelFunction


def run_kernel(kernel, r: torch.Tensor, k: torch.Tensor, v: torch.Tensor, w: torch.Tensor, u: torch.Tensor,
               state: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """bf16 r, k, v, w in, bf16 y out; u and the states in fp32 (u's gradient comes back in u's dtype)."""
    r, k, v, w = (x.contiguous() for x in (r, k, v, w))
    u32 = u.float().contiguous()
    s32 = None if state is None else state.float().contiguous()
    return WKV6KernelFunction.apply(r, k, v, w, u32, s32, kernel)


def wkv6_cuda(r: torch.Tensor, k: torch.Tensor, v: torch.Tensor, w: torch.Tensor, u: torch.Tensor,
              state: torch.Tensor | None = None, build_directory: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The kernel on the GPU of r."""
    with torch.cuda.device(r.device):
        return run_kernel(load_kernel(u.shape[1], build_directory=build_directory), r, k, v, w, u, state)
