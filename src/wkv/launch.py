"""Where a kernel call runs: the device it is made current on and the stream handle it is given.

The CUDA extension and the host build (cuda_emulated) take the same calls; on a GPU the kernels
run on PyTorch's current stream of the inputs' device, on the CPU the stream handle is 0 and no
device is made current.
"""

from __future__ import annotations

import contextlib

import torch

__all__ = ["current_stream", "kernel_device"]


def current_stream(device: torch.device) -> int:
    """The handle the kernels run on: the current CUDA stream of `device`, or 0 on the CPU (emulation)."""
    return torch.cuda.current_stream(device).cuda_stream if device.type == "cuda" else 0


def kernel_device(device: torch.device) -> contextlib.AbstractContextManager:
    """`device` made the current CUDA device for a kernel call (its allocations and launches); nothing on the CPU."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()
