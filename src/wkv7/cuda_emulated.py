"""The WKV7 CUDA kernel's own source on the CPU: backend "cuda_emulated" (as src/wkv6/cuda_emulated.py).

cuda/wkv7_cuda.cu is compiled unchanged by the host C++ compiler with cuda/cuda_on_host.h, with the
launchers of cuda/wkv7_on_host.cpp (src/wkv/build.py), and called through ctypes (src/wkv/host.py);
this file says which buffers the launchers fill. The autograd function is the real one
(cuda.WKV7KernelFunction). bf16 r, w, k, v, a, b and fp32 states on CPU tensors. Slow (one host
thread per CUDA thread): it exists so that tests run the kernel's source on machines without a GPU.
"""

from __future__ import annotations

import torch

from ..wkv.host import HostKernel, load_host_kernel
from .cuda import KERNEL, run_kernel


def host_forward(kernel: HostKernel, r, w, k, v, a, b, s0, keep_states, stream=0):
    """The extension's forward: (y bf16, final state fp32, the states every 16 steps when keep_states else None)."""
    B, T, C = r.shape
    H, N = C // kernel.N, kernel.N
    y = torch.empty_like(r)
    sT = torch.empty(B, H, N, N, dtype=torch.float32)
    states = (torch.empty(B, H, kernel.function("checkpoints")(T), N, N, dtype=torch.float32)
              if keep_states else None)
    kernel.launch("forward", B, T, H, r, w, k, v, a, b, s0, y, sT, states)
    return y, sT, states


def host_backward(kernel: HostKernel, r, w, k, v, a, b, states, gy, gsT, stream=0):
    """The extension's backward: (gr, gw, gk, gv, ga, gb, g_state)."""
    B, T, C = r.shape
    H, N = C // kernel.N, kernel.N
    grads = [torch.empty_like(r) for _ in range(6)]
    gs0 = torch.empty(B, H, N, N, dtype=torch.float32)
    hist = torch.empty(B, H, kernel.function("span")(), N, N, dtype=torch.float32)   # the states recomputed
    kernel.launch("backward", B, T, H, r, w, k, v, a, b, states, gy, gsT, *grads, gs0, hist)
    return (*grads, gs0)


def wkv7_cuda_emulated(r, w, k, v, a, b, state, head_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The CUDA kernel's source on the CPU: bf16 in, bf16 y out; fp32 states."""
    return run_kernel(load_host_kernel(KERNEL, head_size, host_forward, host_backward), r, w, k, v, a, b, state)
