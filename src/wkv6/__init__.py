"""The WKV6 operator (RWKV-6's state update): one entry point, four backends that agree.

    y, final_state = wkv6(r, k, v, w, u, state=None, *, head_size=None, chunk_size=16, backend="auto")

r, k, v, w: (B, T, C); w is the raw decay (per-step decay = exp(-exp(w))).
u: (H, N) "time_faaaa" bonus, C = H * N (N = 64 in RWKV6).
state: (B, H, N, N) indexed [key, value], or None for zeros; differentiable.
head_size: N; None reads it off u (given, it must agree with u).
chunk_size: the chunked backend's chunk length (the other backends check it and ignore it).
y: (B, T, C) in r's dtype; final_state: (B, H, N, N) float32 (float64 for float64 input).

Backends (src/wkv/backends.py): "naive" (naive.py, step by step, the ground truth, any float dtype),
"chunked" (chunked.py, pure PyTorch, chunk-parallel, any device), "cuda" (cuda.py, our kernel: bf16
r/k/v/w, fp32 state), "cuda_emulated" (cuda_emulated.py, the same kernel source compiled for the CPU:
bf16 CPU tensors; slow, for tests), "auto" (cuda for bf16 CUDA tensors, else naive for one token, chunked for more).
"""

from __future__ import annotations

import torch

from ..wkv.backends import BACKENDS, resolve_backend
from ..wkv.dispatch import dispatch
from ..wkv.inputs import check_sequences, check_state, resolve_head_size
from .chunked import wkv6_chunked
from .cuda import wkv6_cuda
from .cuda_emulated import wkv6_cuda_emulated
from .naive import wkv6_naive

OP = "wkv6"

__all__ = ["wkv6", "wkv6_naive", "wkv6_chunked", "BACKENDS", "resolve_backend"]


def wkv6(r: torch.Tensor, k: torch.Tensor, v: torch.Tensor, w: torch.Tensor, u: torch.Tensor,
         state: torch.Tensor | None = None, *, head_size: int | None = None, chunk_size: int = 16,
         backend: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """See the module docstring. Bad dtypes, shapes or devices raise ValueError naming the argument."""
    B, T, C = check_sequences(OP, {"r": r, "k": k, "v": v, "w": w}, {"u": u, "state": state})
    if u.dim() != 2 or u.shape[0] * u.shape[1] != C:
        raise ValueError(f"{OP}: u has shape {tuple(u.shape)}, expected (H, N) with H * N = C = {C}")
    N = resolve_head_size(OP, C, head_size, {"u": u, "state": state})
    H = C // N
    if u.shape[1] != N:
        raise ValueError(f"{OP}: u has shape {tuple(u.shape)}, expected (H, N) = {(H, N)} for head_size = {N}")
    check_state(OP, state, B, H, N)
    return dispatch(OP, backend, r, state, N, chunk_size, {
        "naive": lambda: wkv6_naive(r, k, v, w, u, state),
        "chunked": lambda: wkv6_chunked(r, k, v, w, u, state, chunk_size=chunk_size),
        "cuda": lambda: wkv6_cuda(r, k, v, w, u, state),
        "cuda_emulated": lambda: wkv6_cuda_emulated(r, k, v, w, u, state),
    })
