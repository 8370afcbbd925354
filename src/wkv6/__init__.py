"""The WKV6 operator: one entry point, three backends that agree.

    y, final_state = wkv6(r, k, v, w, u, state=None, backend="auto")

r, k, v, w: (B, T, C); w is the raw decay (per-step decay = exp(-exp(w))).
u: (H, N) "time_faaaa" bonus, C = H * N (N = 64 in RWKV6).
state: (B, H, N, N) indexed [key, value], or None for zeros; differentiable.
y: (B, T, C) in r's dtype; final_state: (B, H, N, N) float32 (float64 for float64 input).

Backends: "naive" (step by step, the ground truth, any float dtype), "chunked" (pure
PyTorch, chunk-parallel, any device), "cuda" (our kernel: bf16 r/k/v/w, fp32 state),
"cuda_emulated" (the same kernel source compiled for the CPU: bf16 CPU tensors; slow, for
tests), "auto" (cuda for bf16 CUDA tensors, chunked otherwise).
"""

from __future__ import annotations

import torch

from ..utils.cuda_build import check_kernel_input
from .chunked import wkv6_chunked
from .naive import compute_dtype, wkv6_naive

BACKENDS = ("auto", "naive", "chunked", "cuda", "cuda_emulated")

__all__ = ["wkv6", "wkv6_naive", "wkv6_chunked", "BACKENDS", "resolve_backend"]


def resolve_backend(backend: str, r: torch.Tensor) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"wkv6: backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "cuda" if (r.is_cuda and r.dtype == torch.bfloat16) else "chunked"
    return backend


def _shape(x: torch.Tensor) -> tuple:
    return tuple(x.shape)


def _validate(r, k, v, w, u, state, backend: str) -> None:
    named = {"r": r, "k": k, "v": v, "w": w, "u": u}
    if state is not None:
        named["state"] = state
    for name, x in named.items():
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"wkv6: {name} must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise ValueError(f"wkv6: {name} has dtype {x.dtype}, expected a floating-point dtype")
    if r.dim() != 3:
        raise ValueError(f"wkv6: r has shape {_shape(r)}, expected (B, T, C)")
    B, T, C = r.shape
    for name in ("k", "v", "w"):
        x = named[name]
        if x.shape != r.shape:
            raise ValueError(f"wkv6: {name} has shape {_shape(x)}, expected (B, T, C) = {_shape(r)} like r")
        if x.dtype != r.dtype:
            raise ValueError(f"wkv6: {name} has dtype {x.dtype}, expected {r.dtype} like r")
    if u.dim() != 2 or u.shape[0] * u.shape[1] != C:
        raise ValueError(f"wkv6: u has shape {_shape(u)}, expected (H, N) with H * N = C = {C}")
    H, N = u.shape
    if state is not None and tuple(state.shape) != (B, H, N, N):
        raise ValueError(f"wkv6: state has shape {_shape(state)}, expected (B, H, N, N) = {(B, H, N, N)}")
    for name, x in named.items():
        if x.device != r.device:
            raise ValueError(f"wkv6: {name} is on {x.device}, expected {r.device} like r")
    if backend in ("cuda", "cuda_emulated"):
        check_kernel_input("wkv6", backend, r, N)


def wkv6(r: torch.Tensor, k: torch.Tensor, v: torch.Tensor, w: torch.Tensor, u: torch.Tensor,
         state: torch.Tensor | None = None, backend: str = "auto",
         chunk_size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """See the module docstring. Bad dtypes, shapes or devices raise ValueError naming the argument."""
    if not isinstance(r, torch.Tensor):
        raise ValueError(f"wkv6: r must be a torch.Tensor, got {type(r).__name__}")
    backend = resolve_backend(backend, r)
    _validate(r, k, v, w, u, state, backend)
    if r.shape[1] == 0:
        B, _, C = r.shape
        H, N = u.shape
        ct = compute_dtype(r.dtype)
        final = r.new_zeros(B, H, N, N, dtype=ct) if state is None else state.to(ct).clone()
        return r.new_zeros(r.shape), final
    if backend == "naive":
        return wkv6_naive(r, k, v, w, u, state)
    if backend == "chunked":
        return wkv6_chunked(r, k, v, w, u, state, chunk_size=chunk_size)
    if backend == "cuda_emulated":
        from .cuda_emulated import wkv6_cuda_emulated
        return wkv6_cuda_emulated(r, k, v, w, u, state)
    from .cuda import wkv6_cuda
    return wkv6_cuda(r, k, v, w, u, state)
