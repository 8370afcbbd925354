"""The common tail of every WKV entry point: pick the backend, answer an empty sequence, run.

An operator's entry point checks its own arguments (inputs.py does the shared part), then hands
`dispatch` the resolved head size and one zero-argument callable per concrete backend; `dispatch`
resolves "auto", checks what the kernel backends take, returns at once for T == 0 and otherwise
calls the chosen backend.
"""

from __future__ import annotations

from typing import Callable, Mapping

import torch

from .backends import BACKENDS, KERNEL_BACKENDS, check_kernel_input, resolve_backend
from .dtypes import compute_dtype
from .inputs import check_chunk_size

Result = tuple[torch.Tensor, torch.Tensor]        # y (B, T, C), final state (B, H, N, N)

__all__ = ["dispatch", "empty_sequence"]


def empty_sequence(r: torch.Tensor, state: torch.Tensor | None, H: int, N: int) -> Result:
    """T == 0: y is (B, 0, C) in r's dtype, the final state is the initial one (zeros when None) in the
    compute dtype, a copy that still carries the initial state's gradient."""
    B = r.shape[0]
    ct = compute_dtype(r.dtype)
    final = r.new_zeros(B, H, N, N, dtype=ct) if state is None else state.to(ct).clone()
    return r.new_zeros(r.shape), final


def dispatch(op: str, backend: str, r: torch.Tensor, state: torch.Tensor | None, head_size: int, chunk_size: int,
             run: Mapping[str, Callable[[], Result]]) -> Result:
    """`run` maps each concrete backend ("naive", "chunked", "cuda", "cuda_emulated") to a call of the
    operator's implementation with the arguments bound. r: (B, T, C), already checked by the operator."""
    missing = set(BACKENDS) - {"auto"} - set(run)
    if missing:
        raise TypeError(f"{op}: no implementation given for backend(s) {sorted(missing)}")
    check_chunk_size(op, chunk_size)
    backend = resolve_backend(backend, r, op)
    if backend in KERNEL_BACKENDS:
        check_kernel_input(op, backend, r, head_size)
    if r.shape[1] == 0:
        return empty_sequence(r, state, r.shape[2] // head_size, head_size)
    return run[backend]()
