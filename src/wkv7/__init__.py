"""The WKV7 operator (RWKV-7's state update): one entry point.

    y, final_state = wkv7(r, w, k, v, a, b, state=None, head_size=64, backend="auto")

r, w, k, v, a, b: (B, T, C), C = H * head_size; w is the raw decay (per-step decay
exp(-exp(w))); the model passes a = -kk and b = kk * a (naive.py states the recurrence).
state: (B, H, N, N) indexed [value, key] as in the `rwkv` package, or None for zeros;
differentiable. y: (B, T, C) in r's dtype; final_state: (B, H, N, N) float32 (float64 for
float64 input).

Backends: "naive" (step by step in float32/float64, any device: the ground truth), "chunked"
(pure PyTorch, a chunk of steps per few batched matrix products: exact for any decay, faster
than naive on a CPU; docs/benchmarks.md), "cuda" (our kernel: bf16 r, w, k, v, a, b, fp32 state, forward and
backward), "cuda_emulated" (the same kernel source compiled for the CPU: bf16 CPU tensors; slow,
for tests), "auto" (cuda for bf16 CUDA tensors, chunked otherwise).
"""

from __future__ import annotations

import torch

from ..utils.cuda_build import check_kernel_input
from .chunked import wkv7_chunked
from .naive import compute_dtype, wkv7_naive

BACKENDS = ("auto", "naive", "chunked", "cuda", "cuda_emulated")

__all__ = ["wkv7", "wkv7_naive", "wkv7_chunked", "BACKENDS"]


def _validate(named: dict, state, head_size: int) -> None:
    for name, x in {**named, **({"state": state} if state is not None else {})}.items():
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"wkv7: {name} must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise ValueError(f"wkv7: {name} has dtype {x.dtype}, expected a floating-point dtype")
    r = named["r"]
    if r.dim() != 3:
        raise ValueError(f"wkv7: r has shape {tuple(r.shape)}, expected (B, T, C)")
    for name, x in named.items():
        if x.shape != r.shape or x.dtype != r.dtype or x.device != r.device:
            raise ValueError(f"wkv7: {name} is {tuple(x.shape)} {x.dtype} on {x.device}, expected "
                             f"{tuple(r.shape)} {r.dtype} on {r.device} like r")
    B, T, C = r.shape
    if head_size <= 0 or C % head_size:
        raise ValueError(f"wkv7: C = {C} is not a multiple of head_size = {head_size}")
    H, N = C // head_size, head_size
    if state is not None and (tuple(state.shape) != (B, H, N, N) or state.device != r.device):
        raise ValueError(f"wkv7: state is {tuple(state.shape)} on {state.device}, expected (B, H, N, N) = "
                         f"{(B, H, N, N)} on {r.device}")


def wkv7(r: torch.Tensor, w: torch.Tensor, k: torch.Tensor, v: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
         state: torch.Tensor | None = None, head_size: int = 64, backend: str = "auto",
         chunk_size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """See the module docstring. Bad dtypes, shapes or devices raise ValueError naming the argument."""
    if backend not in BACKENDS:
        raise ValueError(f"wkv7: backend must be one of {BACKENDS}, got {backend!r}")
    _validate({"r": r, "w": w, "k": k, "v": v, "a": a, "b": b}, state, head_size)
    if backend == "auto":
        backend = "cuda" if (r.is_cuda and r.dtype == torch.bfloat16) else "chunked"
    if backend in ("cuda", "cuda_emulated"):
        check_kernel_input("wkv7", backend, r, head_size)
    if r.shape[1] == 0:
        B, _, C = r.shape
        H = C // head_size
        ct = compute_dtype(r.dtype)
        final = (r.new_zeros(B, H, head_size, head_size, dtype=ct) if state is None else state.to(ct).clone())
        return r.new_zeros(r.shape), final
    if backend == "cuda":
        from .cuda import wkv7_cuda
        return wkv7_cuda(r, w, k, v, a, b, state, head_size)
    if backend == "cuda_emulated":
        from .cuda_emulated import wkv7_cuda_emulated
        return wkv7_cuda_emulated(r, w, k, v, a, b, state, head_size)
    if backend == "chunked":
        return wkv7_chunked(r, w, k, v, a, b, head_size, state, chunk_size=chunk_size)
    return wkv7_naive(r, w, k, v, a, b, head_size, state)
