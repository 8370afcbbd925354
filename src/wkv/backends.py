"""The backends every WKV operator offers, how "auto" picks one, and what the kernel backends take.

    "naive"          the recurrence step by step (float32, or float64 for float64 input): the ground truth
    "chunked"        pure PyTorch, a chunk of steps per few batched products: any device, any float dtype
    "cuda"           our CUDA kernel (cuda/): bf16 sequences on a CUDA device, fp32 states
    "cuda_emulated"  the same kernel source compiled for the host CPU: bf16 CPU tensors; slow, for tests
    "auto"           "cuda" for bf16 CUDA tensors; otherwise "naive" for one token (RNN-mode decoding: a
                     single step of the recurrence, which the chunked form only pads out) and
                     "chunked" for longer sequences
"""

from __future__ import annotations

import torch

from .build import SUPPORTED_HEAD_SIZES
from .dtypes import KERNEL_DTYPE

BACKENDS = ("auto", "naive", "chunked", "cuda", "cuda_emulated")
KERNEL_BACKENDS = ("cuda", "cuda_emulated")           # the ones that run our kernel source

__all__ = ["BACKENDS", "KERNEL_BACKENDS", "resolve_backend", "check_kernel_input"]


def resolve_backend(backend: str, r: torch.Tensor, op: str = "wkv") -> str:
    """The backend that runs: `backend` itself, or for "auto" the kernel on bf16 CUDA tensors, the
    step-by-step recurrence for a single token (r: (B, 1, C)) and chunked otherwise. An unknown name is a
    ValueError naming the operator `op`."""
    if backend not in BACKENDS:
        raise ValueError(f"{op}: backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        if r.is_cuda and r.dtype == KERNEL_DTYPE:
            return "cuda"
        return "naive" if r.dim() >= 2 and r.shape[1] == 1 else "chunked"
    return backend


def check_kernel_input(op: str, backend: str, r: torch.Tensor, head_size: int) -> None:
    """What the kernels take: bf16 inputs on a CUDA device ("cuda") or the CPU ("cuda_emulated"), a head
    size they are built for. A ValueError naming the operator and the backend otherwise."""
    wanted = "cuda" if backend == "cuda" else "cpu"
    if r.device.type != wanted:
        raise ValueError(f"{op}(backend={backend!r}): r is on {r.device}, expected a "
                         f"{'CUDA device' if wanted == 'cuda' else 'CPU tensor'}")
    if r.dtype != KERNEL_DTYPE:
        raise ValueError(f"{op}(backend={backend!r}): the inputs have dtype {r.dtype}, expected {KERNEL_DTYPE}")
    if head_size not in SUPPORTED_HEAD_SIZES:
        raise ValueError(f"{op}(backend={backend!r}): head size N = {head_size}, expected a multiple of 4 between 4 "
                         f"and {SUPPORTED_HEAD_SIZES[-1]}")
