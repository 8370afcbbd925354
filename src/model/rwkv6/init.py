"""RWKV-6's initialisation, one tensor at a time: RWKV-LM (RWKV-v5/src/model.py, x060) initialises, with r0 = layer / (n_layer - 1) and
r1 = 1 - layer / n_layer, d[c] = c / C:
  att.time_maa_{x,w,k} = 1 - d^r1, time_maa_v = 1 - (d^r1 + 0.3 r0), time_maa_{r,g} = 1 - d^(r1/2)
  att.time_decay[n] = -6 + 5 (n / (A-1))^(0.7 + 1.3 r0)
  att.time_faaaa[n] = r0 (1 - n / (A-1)) + ((n + 1) % 3 - 1) * 0.1
  att.time_maa_w1, time_decay_w1 = 0; time_maa_w2, time_decay_w2 ~ U(-0.01, 0.01)
  ffn.time_maa_{k,r} = 1 - d^(r1^3)
  LayerNorms 1 / 0; att.ln_x.weight = ((layer + 1) / n_layer)^0.7
  emb ~ U(-1e-4, 1e-4); head orthogonal, gain 0.5 sqrt(V / C) (V > C)
  att.key, att.gate orthogonal gain 0.1; att.output, ffn.value, ffn.receptance = 0;
  every other matrix orthogonal gain 1.
Such a model has zero output projections. `nonzero=True` additionally fills every tensor
RWKV-LM sets to zero with small random values, so that every path of the network carries
signal (what a test of the model's arithmetic needs).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..init import checked, layer_ratios, shared_rule
from .config import RWKV6Config

ZERO_MATRICES = (".att.output.", ".ffn.value.", ".ffn.receptance.")
SMALL_MATRICES = (".att.key.", ".att.gate.")          # orthogonal with gain 0.1
ZERO_LORA_DOWN = ("att.time_maa_w1", "att.time_decay_w1")


def init_tensor(name: str, shape: torch.Size, config: RWKV6Config, gen: torch.Generator,
                nonzero: bool = False) -> torch.Tensor:
    """The fp32 initial value of one RWKV-6 parameter, by RWKV-LM's rules (see the module docstring)."""
    C, A, L = config.n_embd, config.dim_att, config.n_layer
    layer = int(name.split(".")[1]) if name.startswith("blocks.") else 0
    r0, r1 = layer_ratios(layer, L)
    ddd = (torch.arange(C, dtype=torch.float64) / C).view(1, 1, C)
    n = torch.arange(A, dtype=torch.float64)

    def uniform(scale: float) -> torch.Tensor:
        return torch.empty(shape).uniform_(-scale, scale, generator=gen)

    def orthogonal(gain: float) -> torch.Tensor:
        return nn.init.orthogonal_(torch.empty(shape), gain=gain, generator=gen)

    def zero_or_random(fan_in: int) -> torch.Tensor:
        if not nonzero:
            return torch.zeros(shape)
        return torch.empty(shape).normal_(0.0, 1.0 / math.sqrt(fan_in), generator=gen)

    suffix = name.split(".", 2)[-1] if name.startswith("blocks.") else name
    if suffix in ("att.time_maa_x", "att.time_maa_w", "att.time_maa_k"):
        value = 1.0 - ddd ** r1
    elif suffix == "att.time_maa_v":
        value = 1.0 - (ddd ** r1 + 0.3 * r0)
    elif suffix in ("att.time_maa_r", "att.time_maa_g"):
        value = 1.0 - ddd ** (0.5 * r1)
    elif suffix in ("ffn.time_maa_k", "ffn.time_maa_r"):
        value = 1.0 - ddd ** (r1 ** 3)
    elif suffix == "att.time_decay":
        value = (-6.0 + 5.0 * (n / max(A - 1, 1)) ** (0.7 + 1.3 * r0)).view(1, 1, A)
    elif suffix == "att.time_faaaa":
        value = (r0 * (1.0 - n / max(A - 1, 1)) + ((n + 1) % 3 - 1) * 0.1).view(shape)
    elif suffix in ZERO_LORA_DOWN:
        value = zero_or_random(shape[0])
    elif suffix in ("att.time_maa_w2", "att.time_decay_w2"):
        value = uniform(0.01)
    elif (shared := shared_rule(name, shape, config, gen)) is not None:
        value = shared
    elif any(z in name for z in ZERO_MATRICES):
        value = zero_or_random(shape[1])
    elif any(s in name for s in SMALL_MATRICES):
        value = orthogonal(0.1)
    elif name.endswith(".weight") and len(shape) == 2:
        value = orthogonal(1.0)
    else:
        value = None
    return checked(value, name, shape)
