"""The CUDA kernel's own source on the CPU: backend "cuda_emulated".

cuda/wkv6_cuda.cu is compiled unchanged by the host C++ compiler, with cuda/cuda_on_host.h
standing in for the CUDA headers (threads of a block as host threads, __syncthreads as a
barrier, per-block shared memory, a bf16 type rounding as CUDA does), together with the
host launchers of cuda/wkv6_on_host.cpp. It is built through torch.utils.cpp_extension into
torch's extension cache (once per head size) and called through ctypes: no torch headers,
so the build takes seconds. Inputs and outputs are those of the real kernel: bf16 r, k, v,
w, fp32 u and states, here on CPU tensors; the autograd function is the real one
(cuda.WKV6KernelFunction). Slow (one host thread per CUDA thread): it exists so that tests
run the kernel's source, and any change to it, on machines without a GPU.
"""

from __future__ import annotations

import ctypes

import torch

from ..utils.cuda_build import HostLibrary, build_host_library, pointer
from .cuda import CUDA_DIR, run_kernel

SOURCE = CUDA_DIR / "wkv6_on_host.cpp"           # includes wkv6_cuda.cu, which includes cuda_on_host.h

_built: dict[int, "HostKernel"] = {}      # head size -> loaded library


class HostKernel(HostLibrary):
    """The compiled kernels for one head size, with the interface of the CUDA extension."""

    def __init__(self, library: ctypes.CDLL, head_size: int):
        super().__init__(library, head_size, ("wkv6_host_forward", "wkv6_host_backward"))

    def _shapes(self, r: torch.Tensor) -> tuple[int, int, int]:
        B, T, C = r.shape
        return B, T, C // self.N

    def forward(self, r, k, v, w, u, s0, stream=0):
        B, T, H = self._shapes(r)
        y = torch.empty_like(r)
        sT = torch.empty(B, H, self.N, self.N, dtype=torch.float32)
        self.library.wkv6_host_forward(B, T, H, *map(pointer, (r, k, v, w, u, s0, y, sT)))
        return y, sT

    def backward(self, r, k, v, w, u, s0, gy, gsT, stream=0):
        B, T, H = self._shapes(r)
        gr, gk, gv, gw = (torch.empty_like(r) for _ in range(4))
        gu_part = torch.empty(B, H, self.N, dtype=torch.float32)
        gs0 = torch.empty(B, H, self.N, self.N, dtype=torch.float32)
        rA = torch.empty(r.shape, dtype=torch.float32)
        phiT = torch.empty(B, H, self.N, dtype=torch.float32)
        self.library.wkv6_host_backward(B, T, H, *map(pointer, (r, k, v, w, u, s0, gy, gsT, gr, gk, gv, gw, gu_part,
                                                                 gs0, rA, phiT)))
        return gr, gk, gv, gw, gu_part.sum(0), gs0


def load_host_kernel(head_size: int, verbose: bool = False) -> HostKernel:
    """Compile (first call; rebuilt when a source changes) or load the host build for this head size."""
    if head_size not in _built:
        library = build_host_library(f"rwkv6_wkv6_on_host_n{head_size}", SOURCE, head_size, verbose)
        _built[head_size] = HostKernel(library, head_size)
    return _built[head_size]


def wkv6_cuda_emulated(r: torch.Tensor, k: torch.Tensor, v: torch.Tensor, w: torch.Tensor, u: torch.Tensor,
                       state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The CUDA kernel's source on the CPU: bf16 r, k, v, w in, bf16 y out; fp32 u and states."""
    return run_kernel(load_host_kernel(u.shape[1]), r, k, v, w, u, state)
