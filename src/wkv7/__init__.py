"""The WKV7 operator (RWKV-7's state update): one entry point, four backends that agree.

    y, final_state = wkv7(r, w, k, v, a, b, state=None, *, head_size=None, chunk_size=16, backend="auto")

r, w, k, v, a, b: (B, T, C), C = H * N; w is the raw decay (per-step decay exp(-exp(w))); the
model passes a = -kk and b = kk * a (naive.py states the recurrence).
state: (B, H, N, N) indexed [value, key] as in the `rwkv` package, or None for zeros; differentiable.
head_size: N; None reads it off the state, and without a state it is 64 (RWKV-7's).
chunk_size: the chunked backend's chunk length (the other backends check it and ignore it).
y: (B, T, C) in r's dtype; final_state: (B, H, N, N) float32 (float64 for float64 input).

Backends (src/wkv/backends.py): "naive" (naive.py, step by step in float32/float64, any device: the
ground truth), "chunked" (chunked.py, pure PyTorch, a chunk of steps per few batched matrix products:
exact for any decay, faster than naive on a CPU; docs/benchmarks.md), "cuda" (cuda.py, our kernel:
bf16 r, w, k, v, a, b, fp32 state, forward and backward), "cuda_emulated" (cuda_emulated.py, the same
kernel source compiled for the CPU: bf16 CPU tensors; slow, for tests), "auto" (cuda for bf16 CUDA
tensors, else naive for one token and chunked for more).
"""

from __future__ import annotations

import torch

from ..wkv.backends import BACKENDS
from ..wkv.dispatch import dispatch
from ..wkv.inputs import check_sequences, check_state, resolve_head_size
from .chunked import wkv7_chunked
from .cuda import wkv7_cuda
from .cuda_emulated import wkv7_cuda_emulated
from .naive import wkv7_naive

OP = "wkv7"

__all__ = ["wkv7", "wkv7_naive", "wkv7_chunked", "BACKENDS"]


def wkv7(r: torch.Tensor, w: torch.Tensor, k: torch.Tensor, v: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
         state: torch.Tensor | None = None, *, head_size: int | None = None, chunk_size: int = 16,
         backend: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """See the module docstring. Bad dtypes, shapes or devices raise ValueError naming the argument."""
    B, T, C = check_sequences(OP, {"r": r, "w": w, "k": k, "v": v, "a": a, "b": b}, {"state": state})
    N = resolve_head_size(OP, C, head_size, {"state": state})
    check_state(OP, state, B, C // N, N)
    return dispatch(OP, backend, r, state, N, chunk_size, {
        "naive": lambda: wkv7_naive(r, w, k, v, a, b, state, head_size=N),
        "chunked": lambda: wkv7_chunked(r, w, k, v, a, b, state, head_size=N, chunk_size=chunk_size),
        "cuda": lambda: wkv7_cuda(r, w, k, v, a, b, state, head_size=N),
        "cuda_emulated": lambda: wkv7_cuda_emulated(r, w, k, v, a, b, state, head_size=N),
    })
