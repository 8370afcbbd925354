"""The arguments every WKV operator checks the same way, each failure a ValueError naming the argument.

    check_tensors(op, named)                  torch tensors of a floating-point dtype
    check_sequences(op, named, others)        r and its kin: (B, T, C), one dtype; everything on r's device
    resolve_head_size(op, C, head_size, ...)  the head size N: given, or read off the per-head tensors
    check_state(op, state, B, H, N)           the state: (B, H, N, N)
    check_chunk_size(op, chunk_size)          a positive int
"""

from __future__ import annotations

from typing import Mapping

import torch

DEFAULT_HEAD_SIZE = 64            # RWKV-6's and RWKV-7's released models; when no argument says otherwise

__all__ = ["DEFAULT_HEAD_SIZE", "check_tensors", "check_sequences", "resolve_head_size", "check_state",
           "check_chunk_size"]


def _shape(x: torch.Tensor) -> tuple:
    return tuple(x.shape)


def check_tensors(op: str, named: Mapping[str, object]) -> None:
    """Each value is a torch.Tensor of a floating-point dtype (None values are skipped)."""
    for name, x in named.items():
        if x is None:
            continue
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{op}: {name} must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise ValueError(f"{op}: {name} has dtype {x.dtype}, expected a floating-point dtype")


def check_sequences(op: str, sequences: Mapping[str, torch.Tensor],
                    others: Mapping[str, torch.Tensor | None]) -> tuple[int, int, int]:
    """`sequences` (r first, then the rest of the per-step inputs) are floating-point tensors of r's
    shape (B, T, C) and dtype; `others` (per-head parameters, the state; None skipped) floating-point
    tensors. All of them on r's device. Returns (B, T, C)."""
    check_tensors(op, {**sequences, **others})
    (r_name, r), *rest = sequences.items()
    if r.dim() != 3:
        raise ValueError(f"{op}: {r_name} has shape {_shape(r)}, expected (B, T, C)")
    for name, x in rest:
        if x.shape != r.shape:
            raise ValueError(f"{op}: {name} has shape {_shape(x)}, expected (B, T, C) = {_shape(r)} like {r_name}")
        if x.dtype != r.dtype:
            raise ValueError(f"{op}: {name} has dtype {x.dtype}, expected {r.dtype} like {r_name}")
    for name, x in {**sequences, **others}.items():
        if x is not None and x.device != r.device:
            raise ValueError(f"{op}: {name} is on {x.device}, expected {r.device} like {r_name}")
    return tuple(r.shape)


def resolve_head_size(op: str, C: int, head_size: int | None, carriers: Mapping[str, torch.Tensor | None]) -> int:
    """The head size N of a call, the same rule for every operator: `head_size` when given; else the last
    dimension of the first given tensor in `carriers` (the per-head tensors in the operator's order, e.g.
    RWKV-6's u (H, N), then the state (B, H, N, N)); else DEFAULT_HEAD_SIZE. N must divide C. The
    carriers' shapes are checked against N by the operator afterwards."""
    if head_size is None:
        head_size = next((x.shape[-1] for x in carriers.values() if x is not None and x.dim() > 0),
                         DEFAULT_HEAD_SIZE)
    if isinstance(head_size, bool) or not isinstance(head_size, int) or head_size <= 0:
        raise ValueError(f"{op}: head_size must be a positive int, got {head_size!r}")
    if C % head_size:
        raise ValueError(f"{op}: C = {C} is not a multiple of head_size = {head_size}")
    return head_size


def check_state(op: str, state: torch.Tensor | None, B: int, H: int, N: int) -> None:
    """The state, when given, is (B, H, N, N) (its index order, [key, value] or [value, key], is the operator's)."""
    if state is not None and _shape(state) != (B, H, N, N):
        raise ValueError(f"{op}: state has shape {_shape(state)}, expected (B, H, N, N) = {(B, H, N, N)}")


def check_chunk_size(op: str, chunk_size: int) -> None:
    """The chunked backend's chunk length: a positive int (checked whatever the backend, so a bad value never waits)."""
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size <= 0:
        raise ValueError(f"{op}: chunk_size must be a positive int, got {chunk_size!r}")
