"""Our WKV7 CUDA kernel (cuda/wkv7_cuda.cu + cuda/wkv7_op.cpp): its autograd function, backend "cuda".

The extension is built on first use, once per head size (src/wkv/build.py). `WKV7KernelFunction`
is the kernel's autograd function, on a GPU here and on the CPU for cuda_emulated.py (the same
kernel source compiled for the host). The forward keeps the state every 16 steps only when a
backward will follow; the backward recomputes the rest from them.
"""

from __future__ import annotations

import torch

from ..wkv.build import KernelSource, load_extension
from ..wkv.dtypes import kernel_cotangents, kernel_state
from ..wkv.launch import current_stream, kernel_device

KERNEL = KernelSource("wkv7")

__all__ = ["KERNEL", "WKV7KernelFunction", "run_kernel", "wkv7_cuda"]


class WKV7KernelFunction(torch.autograd.Function):
    """r, w, k, v, a, b: (B, T, C) bf16 contiguous; state: (B, H, N, N) fp32 [value, key] or None.
    `kernel` has forward(r, w, k, v, a, b, state, keep_states, stream) -> (y, final_state, states) and
    backward(r, w, k, v, a, b, states, gy, g_final_state, stream) -> (gr, gw, gk, gv, ga, gb, g_state)."""

    @staticmethod
    def forward(ctx, r, w, k, v, a, b, state, kernel):
        keep = any(ctx.needs_input_grad[:7])
        y, final_state, states = kernel.forward(r, w, k, v, a, b, state, keep, current_stream(r.device))
        ctx.kernel, ctx.has_state = kernel, state is not None
        if keep:
            ctx.save_for_backward(r, w, k, v, a, b, states)
        ctx.set_materialize_grads(False)
        return y, final_state

    @staticmethod
    def backward(ctx, gy, g_final_state):
        r, w, k, v, a, b, states = ctx.saved_tensors
        gy, g_final_state = kernel_cotangents(gy, g_final_state, like=r)
        with kernel_device(r.device):
            *grads, g_state = ctx.kernel.backward(r, w, k, v, a, b, states, gy, g_final_state,
                                                  current_stream(r.device))
        return (*grads, g_state if ctx.has_state else None, None)


def run_kernel(kernel, r, w, k, v, a, b, state) -> tuple[torch.Tensor, torch.Tensor]:
    """bf16 r, w, k, v, a, b in, bf16 y out; the states in fp32. Runs with r's device current (a GPU's;
    nothing on the CPU)."""
    r, w, k, v, a, b = (x.contiguous() for x in (r, w, k, v, a, b))
    with kernel_device(r.device):
        return WKV7KernelFunction.apply(r, w, k, v, a, b, kernel_state(state), kernel)


def wkv7_cuda(r, w, k, v, a, b, state, head_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The kernel on the GPU of r."""
    return run_kernel(load_extension(KERNEL, head_size), r, w, k, v, a, b, state)
