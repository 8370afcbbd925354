"""The CUDA kernel's own source on the CPU: backend "cuda_emulated".

cuda/wkv6_cuda.cu is compiled unchanged by the host C++ compiler, with cuda/cuda_on_host.h
standing in for the CUDA headers (threads of a block as host threads, __syncthreads as a
barrier, per-block shared memory, a bf16 type rounding as CUDA does), together with the
host launchers of cuda/wkv6_on_host.cpp (src/wkv/build.py, once per head size) and called
through ctypes (src/wkv/host.py). This file says which buffers the launchers fill. Inputs and
outputs are those of the real kernel: bf16 r, k, v, w, fp32 u and states, here on CPU tensors;
the autograd function is the real one (cuda.WKV6KernelFunction). Slow (one host thread per
CUDA thread): it exists so that tests run the kernel's source, and any change to it, on
machines without a GPU.
"""

from __future__ import annotations

import torch

from ..wkv.host import HostKernel, load_host_kernel
from .cuda import KERNEL, run_kernel


def host_forward(kernel: HostKernel, r, k, v, w, u, s0, stream=0):
    """The extension's forward: (y (B, T, C) bf16, final state (B, H, N, N) fp32)."""
    B, T, C = r.shape
    H, N = C // kernel.N, kernel.N
    y = torch.empty_like(r)
    sT = torch.empty(B, H, N, N, dtype=torch.float32)
    kernel.launch("forward", B, T, H, r, k, v, w, u, s0, y, sT)
    return y, sT


def host_backward(kernel: HostKernel, r, k, v, w, u, s0, gy, gsT, stream=0):
    """The extension's backward: (gr, gk, gv, gw, gu, g_state); gu summed here over the batch."""
    B, T, C = r.shape
    H, N = C // kernel.N, kernel.N
    gr, gk, gv, gw = (torch.empty_like(r) for _ in range(4))
    gu_part = torch.empty(B, H, N, dtype=torch.float32)                 # per batch row
    gs0 = torch.empty(B, H, N, N, dtype=torch.float32)
    rA = torch.empty(r.shape, dtype=torch.float32)                      # scratch of the two backward passes
    phiT = torch.empty(B, H, N, dtype=torch.float32)
    kernel.launch("backward", B, T, H, r, k, v, w, u, s0, gy, gsT, gr, gk, gv, gw, gu_part, gs0, rA, phiT)
    return gr, gk, gv, gw, gu_part.sum(0), gs0


def wkv6_cuda_emulated(r: torch.Tensor, k: torch.Tensor, v: torch.Tensor, w: torch.Tensor, u: torch.Tensor,
                       state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The CUDA kernel's source on the CPU: bf16 r, k, v, w in, bf16 y out; fp32 u and states."""
    return run_kernel(load_host_kernel(KERNEL, u.shape[1], host_forward, host_backward), r, k, v, w, u, state)
