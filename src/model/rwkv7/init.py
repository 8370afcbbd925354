"""RWKV-7's initialisation, one tensor at a time: RWKV-LM's (RWKV-v7/train_temp/src/model.py, and the
overrides of its generate_init_weight, which train.py applies when training from scratch).

With r0 = layer / (n_layer - 1), r1 = 1 - layer / n_layer, d[c] = c / C, lin[c] = c / (C - 1) - 0.5
and zig[c] = z |z| where z = ((c mod N) - (N - 1) / 2) / ((N - 1) / 2):
  att.x_r, x_g = 1 - d^(0.2 r1); x_w, x_a = 1 - d^(0.9 r1); x_k, x_v = 1 - d^(0.7 r1)
  att.w0 = -6 + 6 (c / (C - 1))^(1 + r0^0.3) + 0.5 + 2.5 zig      (0.5 undoes the softplus's -0.5)
  att.a0 = -0.19 + 0.3 zig + 0.4 lin;  att.v0 = 0.73 - 0.4 lin
  att.w1, a1, v1, g1 = 0;  w2, a2, v2, g2 orthogonal, gain 0.1 (times sqrt(rows / cols) when taller)
  att.k_k = 0.71 - 0.1 lin;  att.k_a = 1.02;  att.r_k = -0.04
  att.receptance, att.value, ffn.key orthogonal, gain 1;  att.key orthogonal, gain 0.1;
  att.output, ffn.value = 0;  ffn.x_k = 1 - d^(r1^4);  att.ln_x.weight = ((layer + 1) / n_layer)^0.7
  other LayerNorms 1 / 0;  emb ~ U(+-1e-4);  head orthogonal, gain 0.5 sqrt(V / C) (V > C)
`nonzero=True` also fills every tensor set to zero with small random values, so that every path
of the network carries signal (what a test of the model's arithmetic needs). src/model/init.py builds
whole models from these rules (init_model).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..init import checked, layer_ratios, shared_rule
from .config import RWKV7Config

ZERO_AT_INIT = ("att.w1", "att.a1", "att.v1", "att.g1", "att.output.weight", "ffn.value.weight")


def init_tensor(name: str, shape: torch.Size, config: RWKV7Config, gen: torch.Generator,
                 nonzero: bool = False) -> torch.Tensor:
    """The fp32 initial value of one RWKV-7 parameter (see the module docstring)."""
    C, L, N = config.n_embd, config.n_layer, config.head_size
    layer = int(name.split(".")[1]) if name.startswith("blocks.") else 0
    r0, r1 = layer_ratios(layer, L)
    c = torch.arange(C, dtype=torch.float64)
    d = (c / C).view(1, 1, C)
    lin = (c / max(C - 1, 1) - 0.5).view(1, 1, C)
    z = ((c % N) - (N - 1) / 2) / ((N - 1) / 2)
    zig = (z * z.abs()).view(1, 1, C)

    def uniform(scale: float) -> torch.Tensor:
        return torch.empty(shape).uniform_(-scale, scale, generator=gen)

    def orthogonal(gain: float) -> torch.Tensor:
        rows, cols = shape
        return nn.init.orthogonal_(torch.empty(shape), gain=gain * (math.sqrt(rows / cols) if rows > cols else 1.0),
                                   generator=gen)

    suffix = name.split(".", 2)[-1] if name.startswith("blocks.") else name
    if suffix in ZERO_AT_INIT:
        value = (torch.empty(shape).normal_(0.0, 0.5 / math.sqrt(shape[0]), generator=gen) if nonzero
                 else torch.zeros(shape))
    elif suffix in ("att.x_r", "att.x_g"):
        value = 1.0 - d ** (0.2 * r1)
    elif suffix in ("att.x_w", "att.x_a"):
        value = 1.0 - d ** (0.9 * r1)
    elif suffix in ("att.x_k", "att.x_v"):
        value = 1.0 - d ** (0.7 * r1)
    elif suffix == "att.w0":
        value = -6.0 + 6.0 * (c / max(C - 1, 1)).view(1, 1, C) ** (1.0 + r0 ** 0.3) + 0.5 + 2.5 * zig
    elif suffix == "att.a0":
        value = -0.19 + 0.3 * zig + 0.4 * lin
    elif suffix == "att.v0":
        value = 0.73 - 0.4 * lin
    elif suffix in ("att.w2", "att.a2", "att.v2", "att.g2"):
        value = orthogonal(0.1)
    elif suffix == "att.k_k":
        value = 0.71 - 0.1 * lin
    elif suffix == "att.k_a":
        value = torch.full(shape, 1.02)
    elif suffix == "att.r_k":
        value = torch.full(shape, -0.04)
    elif suffix in ("att.receptance.weight", "att.value.weight", "ffn.key.weight"):
        value = nn.init.orthogonal_(torch.empty(shape), gain=1.0, generator=gen)
    elif suffix == "att.key.weight":
        value = nn.init.orthogonal_(torch.empty(shape), gain=0.1, generator=gen)
    elif suffix == "ffn.x_k":
        value = 1.0 - d ** (r1 ** 4)
    elif (shared := shared_rule(name, shape, config, gen)) is not None:
        value = shared
    else:
        value = None
    return checked(value, name, shape)
