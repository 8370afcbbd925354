"""Our WKV6 CUDA kernel (cuda/wkv6_cuda.cu + cuda/wkv6_op.cpp): its autograd function, backend "cuda".

The extension is built on first use, once per head size (src/wkv/build.py). `WKV6KernelFunction`
is the kernel's autograd function, on a GPU here and on the CPU for cuda_emulated.py (the same
kernel source, compiled for the host).
"""

from __future__ import annotations

import torch

from ..wkv.build import CUDA_DIR, KernelSource, defines, load_extension, nvcc_flags
from ..wkv.dtypes import kernel_cotangents, kernel_state
from ..wkv.launch import current_stream, kernel_device

KERNEL = KernelSource("wkv6")

# CUDA_DIR, defines and nvcc_flags: where this kernel's source is and the flags it is compiled with
__all__ = ["KERNEL", "WKV6KernelFunction", "run_kernel", "wkv6_cuda", "CUDA_DIR", "defines", "nvcc_flags"]


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
        gy, g_final_state = kernel_cotangents(gy, g_final_state, like=r)
        with kernel_device(r.device):
            gr, gk, gv, gw, gu, g_state = ctx.kernel.backward(r, k, v, w, u, state, gy, g_final_state,
                                                              current_stream(r.device))
        return gr, gk, gv, gw, gu, (g_state if ctx.has_state else None), None


def run_kernel(kernel, r: torch.Tensor, k: torch.Tensor, v: torch.Tensor, w: torch.Tensor, u: torch.Tensor,
               state: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """bf16 r, k, v, w in, bf16 y out; u and the states in fp32 (u's gradient comes back in u's dtype).
    Runs with r's device current (a GPU's; nothing on the CPU)."""
    r, k, v, w = (x.contiguous() for x in (r, k, v, w))
    with kernel_device(r.device):
        return WKV6KernelFunction.apply(r, k, v, w, kernel_state(u), kernel_state(state), kernel)


def wkv6_cuda(r: torch.Tensor, k: torch.Tensor, v: torch.Tensor, w: torch.Tensor, u: torch.Tensor,
              state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The kernel on the GPU of r."""
    return run_kernel(load_extension(KERNEL, u.shape[1]), r, k, v, w, u, state)
