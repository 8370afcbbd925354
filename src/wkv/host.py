"""A kernel's host build (backend "cuda_emulated") behind the interface of its CUDA extension.

The host build of an operator's kernel (build.py, target "host") is a C library whose launchers,
<op>_host_forward and <op>_host_backward, take (B, T, H) and then the pointers of every input,
output and scratch buffer. `HostKernel` wraps it with forward(...) and backward(...) taking and
returning the tensors the extension does, so that the operator's autograd function runs either.
What buffers a call needs is the operator's business: its binding (src/wkv<N>/cuda_emulated.py)
gives two functions, forward(kernel, *inputs) and backward(kernel, *inputs), that allocate them
and call `kernel.launch("forward", B, T, H, *tensors)` (or "backward").
"""

from __future__ import annotations

import ctypes
from typing import Callable

import torch

from .build import BUILDS, Build, KernelSource

__all__ = ["HostKernel", "load_host_kernel", "pointer"]


def pointer(t: torch.Tensor | None) -> ctypes.c_void_p:
    """A tensor's data pointer for a ctypes call (None: a null pointer)."""
    return ctypes.c_void_p(t.data_ptr() if t is not None else None)


class HostKernel:
    """The compiled host kernels of one operator for one head size N, with its extension's interface."""

    def __init__(self, library: ctypes.CDLL, kernel: KernelSource, head_size: int,
                 forward: Callable[..., tuple], backward: Callable[..., tuple]):
        self.library, self.kernel, self.N = library, kernel, head_size
        self._forward, self._backward = forward, backward

    def function(self, name: str):
        """The library's C function <op>_host_<name> (a launcher, or a query such as a buffer size)."""
        return getattr(self.library, self.kernel.host_function(name))

    def launch(self, name: str, B: int, T: int, H: int, *tensors: torch.Tensor | None) -> None:
        """Run the launcher <op>_host_<name> on (B, T, H) and the tensors' data (CPU, contiguous; None: null)."""
        for t in tensors:
            if t is not None and (t.device.type != "cpu" or not t.is_contiguous()):
                raise ValueError(f"{self.kernel.host_function(name)}: the host kernels take contiguous CPU tensors")
        launcher = self.function(name)
        launcher.restype = None
        launcher(B, T, H, *map(pointer, tensors))

    def forward(self, *args):
        """As the extension's forward (the stream handle, last, is ignored: the CPU has none)."""
        return self._forward(self, *args)

    def backward(self, *args):
        """As the extension's backward."""
        return self._backward(self, *args)


def load_host_kernel(kernel: KernelSource, head_size: int, forward: Callable[..., tuple],
                     backward: Callable[..., tuple]) -> HostKernel:
    """The host build of `kernel` for this head size (compiled on first use, see build.py), with the
    operator's forward and backward over its launchers."""
    return HostKernel(BUILDS.load(Build(kernel, "host", head_size)), kernel, head_size, forward, backward)
