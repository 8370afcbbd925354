"""Our WKV7 CUDA kernel (cuda/wkv7_cuda.cu + cuda/wkv7_op.cpp): built on first use, its autograd function.

The extension is compiled with ninja into torch's extension cache, once per head size.
`WKV7KernelFunction` is the kernel's autograd function, on a GPU here and on the CPU for
cuda_emulated.py (the same kernel source compiled for the host). The forward keeps the state
every 16 steps only when a backward will follow; the backward recomputes the rest from them.
"""

from __future__ import annotations

import contextlib

import torch

from ..utils.cuda_build import build_cuda_extension
from ..utils.paths import CUDA_SOURCES as CUDA_DIR
from ..wkv6.cuda import current_stream

SOURCES = (CUDA_DIR / "wkv7_op.cpp", CUDA_DIR / "wkv7_cuda.cu")

_built: dict[int, object] = {}   # head size -> loaded extension module


def load_kernel(head_size: int, build_directory: str | None = None, verbose: bool = False):
    """Compile (first call) or load the extension for this head size."""
    if head_size not in _built:
        _built[head_size] = build_cuda_extension(f"rwkv7_wkv7_n{head_size}", SOURCES, head_size, build_directory,
                                                 verbose)
    return _built[head_size]


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
        gy = torch.zeros_like(r) if gy is None else gy.to(torch.bfloat16).contiguous()
        if g_final_state is not None:
            g_final_state = g_final_state.float().contiguous()
        with torch.cuda.device(r.device) if r.is_cuda else contextlib.nullcontext():
            *grads, g_state = ctx.kernel.backward(r, w, k, v, a, b, states, gy, g_final_state,
                                                  current_stream(r.device))
        return (*grads, g_state if ctx.has_state else None, None)


def run_kernel(kernel, r, w, k, v, a, b, state) -> tuple[torch.Tensor, torch.Tensor]:
    """bf16 r, w, k, v, a, b in, bf16 y out; the states in fp32."""
    r, w, k, v, a, b = (x.contiguous() for x in (r, w, k, v, a, b))
    s32 = None if state is None else state.float().contiguous()
    return WKV7KernelFunction.apply(r, w, k, v, a, b, s32, kernel)


def wkv7_cuda(r, w, k, v, a, b, state=None, head_size: int = 64,
              build_directory: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The kernel on the GPU of r."""
    with torch.cuda.device(r.device):
        return run_kernel(load_kernel(head_size, build_directory=build_directory), r, w, k, v, a, b, state)
