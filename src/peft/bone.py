"""Bone (Block-Affine Efficient update; DiSHA paper, eq. 3).

Trainable `bone`: (r, out), zero-initialised. With x_b the consecutive r-wide slices of
the input (x zero-padded on the right when in % r != 0):

    y = W x + (sum_b x_b) @ bone            ΔW[o, c] = bone[c mod r, o]

The update is never built: the forward sums the slices (cost in per token) and does one
(r -> out) product; autograd keeps only the r-wide sum for the backward.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layer import AdapterLinear, wide


def slice_sum(x: torch.Tensor, r: int) -> torch.Tensor:
    """(..., in) -> (..., r): the sum of the consecutive r-wide slices, zero-padding the last."""
    pad = (-x.shape[-1]) % r
    if pad:
        x = F.pad(x, (0, pad))
    return x.unflatten(-1, (-1, r)).sum(-2)


class BoneLinear(AdapterLinear):
    method = "bone"
    adapter_names = file_tensors = ("bone",)
    options = uses = ("r",)

    def __init__(self, base: nn.Linear, r: int, name: str = ""):
        super().__init__(base, name)
        if not isinstance(r, int) or r <= 0:
            raise ValueError(f"bone: r must be a positive integer, got {r!r} for {self.where()}")
        if r > self.in_features:
            raise ValueError(f"bone: r={r} is larger than in_features={self.in_features} of {self.where()}")
        self.r = r
        self.bone = self.adapter_parameter(r, self.out_features)

    @classmethod
    def from_config(cls, base, config, name="", generator=None, init_weights=True) -> "BoneLinear":
        return cls(base, config.r, name=name)

    def adapted_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base_forward(x) + slice_sum(x, self.r) @ self.bone.to(x.dtype)   # (..., out)

    def delta_weight(self) -> torch.Tensor:
        """ΔW (out, in) fp32: ΔW[o, c] = bone[c mod r, o]."""
        reps = -(-self.in_features // self.r)
        return wide(self.bone).t().repeat(1, reps)[:, :self.in_features]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, r={self.r}"
