"""What each WKV CUDA kernel keeps for its backward and allocates in it, in bytes.

    kernel = kernel_for(family.operator)                 # the record of wkv6's or wkv7's kernel
    kernel.saved_extra(config, B, T)                     # beyond its (B, T, C) bf16 inputs
    kernel.backward_bytes(config, B, T, n_inputs)        # what its backward allocates

On a GPU in bf16, `wkv_backend auto` runs our CUDA kernel (src/wkv/backends.py); its autograd
Function keeps, for the backward (read from the source):

    wkv6  src/wkv6/cuda.py WKV6KernelFunction: r, k, v, w (B, T, C) bf16, u as fp32 (H, N), and the
          start state (B, H, N, N) fp32 when one is given (infctx: the chunk boundary, counted there).
          Backward (cuda/wkv6_op.cpp): gr, gk, gv, gw (B, T, C) bf16, rA (B, T, C) fp32,
          gu_part, phiT (B, H, N) fp32, gs0 (B, H, N, N) fp32.
    wkv7  src/wkv7/cuda.py WKV7KernelFunction: r, w, k, v, a, b (B, T, C) bf16 and the state every
          16 steps, (B, H, ceil(T / 16), N, N) fp32 (cuda/wkv7_op.cpp `ckpt`, _L_ = 16).
          Backward: gr, gw, gk, gv, ga, gb (B, T, C) bf16, gs0 (B, H, N, N) fp32, hist (B, H, 16, N, N) fp32.

The (B, T, C) inputs are found by tracing the family's forward (trace.py records the operator's
arguments); this module adds what is particular to each kernel. An operator without a record here
(a new family's, before its kernel is described) is counted with its inputs alone, and its
backward as one bf16 gradient per input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..wkv6 import wkv6
from ..wkv7 import wkv7

FP32, BF16 = 4, 2


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class KernelRecord:
    """A CUDA kernel's memory: `state_every` (keeps the fp32 (N, N) state of each head every this many
    steps; 0: none), and its backward's fp32 (B, T, C) workspaces, (B, H, N) and (B, H, N, N) buffers and
    (B, H, history, N, N) history."""

    name: str
    state_every: int = 0
    u_bytes_per_head_channel: int = 0           # wkv6 keeps u (H, N) as fp32
    backward_fp32_sequences: int = 0            # wkv6: rA
    backward_fp32_vectors: int = 0              # wkv6: gu_part, phiT
    backward_history: int = 0                   # wkv7: hist (B, H, 16, N, N)

    def saved_extra(self, config, batch: int, time: int) -> int:
        """Bytes kept for the backward beyond the (B, T, C) inputs."""
        H, N = config.n_head, config.head_size
        states = batch * H * _ceil(time, self.state_every) * N * N * FP32 if self.state_every else 0
        return states + self.u_bytes_per_head_channel * H * N

    def backward_bytes(self, config, batch: int, time: int, n_inputs: int) -> int:
        """What one call's backward allocates: a bf16 gradient per input, its workspaces, gs0."""
        H, N, C = config.n_head, config.head_size, config.dim_att
        return (n_inputs * batch * time * C * BF16 + self.backward_fp32_sequences * batch * time * C * FP32
                + self.backward_fp32_vectors * batch * H * N * FP32 + batch * H * N * N * FP32
                + self.backward_history * batch * H * N * N * FP32)


KERNELS: dict[Callable, KernelRecord] = {
    wkv6: KernelRecord("wkv6", u_bytes_per_head_channel=FP32, backward_fp32_sequences=1, backward_fp32_vectors=2),
    wkv7: KernelRecord("wkv7", state_every=16, backward_history=16),
}
GENERIC = KernelRecord("its inputs")


def kernel_for(operator: Callable) -> KernelRecord:
    """The kernel record of a family's WKV operator (GENERIC when it has none)."""
    return KERNELS.get(operator, GENERIC)
