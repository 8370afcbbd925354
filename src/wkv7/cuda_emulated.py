"""The WKV7 CUDA kernel's own source on the CPU: backend "cuda_emulated" (as src/wkv6/cuda_emulated.py).

cuda/wkv7_cuda.cu is compiled unchanged by the host C++ compiler with cuda/cuda_on_host.h, with the
launchers of cuda/wkv7_on_host.cpp, and called through ctypes; the autograd function is the real
one (cuda.WKV7KernelFunction). bf16 r, w, k, v, a, b and fp32 states on CPU tensors. Slow (one host
thread per CUDA thread): it exists so that tests run the kernel's source on machines without a GPU.
"""

from __future__ import annotations

import ctypes

import torch

from ..utils.cuda_build import HostLibrary, build_host_library, pointer
from ..utils.paths import CUDA_SOURCES as CUDA_DIR
from .cuda import run_kernel

SOURCE = CUDA_DIR / "wkv7_on_host.cpp"           # includes wkv7_cuda.cu, which includes cuda_on_host.h

_built: dict[int, "HostKernel"] = {}      # head size -> loaded library


class HostKernel(HostLibrary):
    """The compiled kernels for one head size, with the interface of the CUDA extension."""

    def __init__(self, library: ctypes.CDLL, head_size: int):
        super().__init__(library, head_size, ("wkv7_host_forward", "wkv7_host_backward"))
        self.span = library.wkv7_host_span()

    def forward(self, r, w, k, v, a, b, s0, keep_states, stream=0):
        B, T, C = r.shape
        H = C // self.N
        y = torch.empty_like(r)
        sT = torch.empty(B, H, self.N, self.N, dtype=torch.float32)
        states = (torch.empty(B, H, self.library.wkv7_host_checkpoints(T), self.N, self.N, dtype=torch.float32)
                  if keep_states else None)
        self.library.wkv7_host_forward(B, T, H, *map(pointer, (r, w, k, v, a, b, s0, y, sT, states)))
        return y, sT, states

    def backward(self, r, w, k, v, a, b, states, gy, gsT, stream=0):
        B, T, C = r.shape
        H = C // self.N
        grads = [torch.empty_like(r) for _ in range(6)]
        gs0 = torch.empty(B, H, self.N, self.N, dtype=torch.float32)
        hist = torch.empty(B, H, self.span, self.N, self.N, dtype=torch.float32)
        self.library.wkv7_host_backward(B, T, H, *map(pointer, (r, w, k, v, a, b, states, gy, gsT, *grads, gs0, hist)))
        return (*grads, gs0)


def load_host_kernel(head_size: int, verbose: bool = False) -> HostKernel:
    """Compile (first call; rebuilt when a source changes) or load the host build for this head size."""
    if head_size not in _built:
        _built[head_size] = HostKernel(build_host_library(f"rwkv7_wkv7_on_host_n{head_size}", SOURCE, head_size,
                                                          verbose), head_size)
    return _built[head_size]


def wkv7_cuda_emulated(r, w, k, v, a, b, state=None, head_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """The CUDA kernel's source on the CPU: bf16 in, bf16 y out; fp32 states."""
    return run_kernel(load_host_kernel(head_size), r, w, k, v, a, b, state)
