"""The dtypes of a WKV call.

PyTorch backends (naive, chunked) compute in `compute_dtype(r.dtype)`: float64 for float64 input,
float32 for everything else; y comes back in r's dtype, the final state in the compute dtype.
The kernels take bf16 sequences (KERNEL_DTYPE) and keep states, and every per-head parameter,
in float32 (KERNEL_STATE_DTYPE); the cotangents they receive are converted the same way.
"""

from __future__ import annotations

import torch

KERNEL_DTYPE = torch.bfloat16               # r, k, v, ... and y, in and out of the kernels
KERNEL_STATE_DTYPE = torch.float32          # initial and final states, u, the state checkpoints

__all__ = ["KERNEL_DTYPE", "KERNEL_STATE_DTYPE", "compute_dtype", "kernel_state", "kernel_cotangents"]


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Half-precision inputs are computed in float32; float32/float64 as they are."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def kernel_state(state: torch.Tensor | None) -> torch.Tensor | None:
    """A state (or a per-head parameter) as a kernel reads it: float32, contiguous; None stays None."""
    return None if state is None else state.to(KERNEL_STATE_DTYPE).contiguous()


def kernel_cotangents(gy: torch.Tensor | None, g_final_state: torch.Tensor | None,
                      like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The gradients a kernel's backward receives: gy in bf16 (zeros like `like` when autograd gives
    none), the final state's in float32 (None stays None: the kernel treats it as zeros)."""
    gy = torch.zeros_like(like) if gy is None else gy.to(KERNEL_DTYPE).contiguous()
    return gy, kernel_state(g_final_state)
