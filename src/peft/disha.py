"""DiSHA (Dimension-Sharding Adaptation; DiSHA paper, eq. 2), the general shard-sharing update.

Trainable `disha`: D of shape (r1, r2), zero-initialised, expanded (tiled) over the weight:

    ΔW[o, c] = D[o mod r1, c mod r2]            (needs r1 | out and r2 | in)
    ΔW x = tile_over_output(D (sum_b x_b)),     x_b the r2-wide input slices

so the forward never builds the expansion: one slice sum, one (r2 -> r1) product, a tile.
Bone is the point r1 = out (D = bone^T); Hugging Face peft's MiSS "mini" is r1 = mini_r,
r2 = r (D = miss_block^T).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .bone import slice_sum
from .layer import AdapterLinear, wide


class DishaLinear(AdapterLinear):
    method = "disha"
    adapter_names = file_tensors = ("disha",)
    options = uses = ("r", "disha_r1")

    def __init__(self, base: nn.Linear, r1: int, r2: int, name: str = ""):
        super().__init__(base, name)
        for label, value in (("r1", r1), ("r2", r2)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"disha: {label} must be a positive integer, got {value!r} for {self.where()}")
        if self.out_features % r1 or self.in_features % r2:
            raise ValueError(f"disha: r1={r1} must divide out={self.out_features} and r2={r2} must divide "
                             f"in={self.in_features} for {self.where()}")
        self.r1, self.r2 = r1, r2
        self.disha = self.adapter_parameter(r1, r2)

    @classmethod
    def from_config(cls, base, config, name="", generator=None, init_weights=True) -> "DishaLinear":
        """PeftConfig.r is r2 (the input-side shard width); disha_r1 None means the full output width."""
        r1 = config.disha_r1 if config.disha_r1 is not None else base.out_features
        return cls(base, r1, config.r, name=name)

    def adapted_forward(self, x: torch.Tensor) -> torch.Tensor:
        t = slice_sum(x, self.r2) @ self.disha.to(x.dtype).t()                # (..., r1)
        tiled = t.repeat(*([1] * (x.dim() - 1)), self.out_features // self.r1)  # (..., out)
        return self.base_forward(x) + tiled

    def delta_weight(self) -> torch.Tensor:
        """ΔW (out, in) fp32: D tiled, ΔW[o, c] = D[o mod r1, c mod r2]."""
        return wide(self.disha).repeat(self.out_features // self.r1, self.in_features // self.r2)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, r1={self.r1}, r2={self.r2}"
