"""Helpers for the adapter tests: explicit float64 layers, random non-zero adapters."""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from src.model import RWKV6Config
from src.peft import METHODS, PeftConfig, adapter_layers, apply_peft

SMALL = RWKV6Config(n_layer=2, n_embd=128, vocab_size=300)          # ffn 448
# settings that change how a method computes (beside its defaults), checked as methods of their own
VARIANTS = {"bat": {"in": dict(bat_index="in")}, "disha": {"r1": dict(disha_r1=32)}, "lora": {"alpha": dict(alpha=16)}}


def method_matrix(r: int = 16, low_rank: int = 8, variants: bool = True, **common) -> dict[str, PeftConfig]:
    """{id: PeftConfig}: every method of the adapter registry (a new one is covered without editing a list),
    LoRA-like ones at `low_rank`, and with `variants` each method's other settings (VARIANTS) as well."""
    out = {}
    for method in METHODS:
        rank = low_rank if method in ("lora", "pissa") else r
        out[method] = PeftConfig(method, rank, **common)
        for name, extra in (VARIANTS.get(method, {}).items() if variants else ()):
            out[f"{method}_{name}"] = PeftConfig(method, rank, **extra, **common)
    return out


def float64_layer(make, in_features: int, out_features: int, seed: int = 0):
    """(adapter layer in float64 with random non-zero adapter tensors, a copy of its base weight)."""
    torch.manual_seed(seed)
    linear = nn.Linear(in_features, out_features, bias=False).double()
    weight = linear.weight.detach().clone()
    layer = make(linear).double()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name in layer.adapter_names:
            p = getattr(layer, name)
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.3)
    return layer, weight


def fast_vs_explicit(layer, weight, batch_shape=(3, 5), seed: int = 2):
    """Relative differences (output, grad x, grad of each adapter tensor) between the layer's
    fast forward and F.linear(x, W + delta_weight()), in float64."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*batch_shape, layer.in_features, generator=g, dtype=torch.float64, requires_grad=True)
    params = [getattr(layer, n) for n in layer.adapter_names]
    y = layer(x)
    ref = F.linear(x, weight + layer.delta_weight())
    cot = torch.randn(y.shape, generator=g, dtype=torch.float64)
    got = torch.autograd.grad((y * cot).sum(), [x, *params])
    want = torch.autograd.grad((ref * cot).sum(), [x, *params])

    def rel(a, b):
        return ((a - b).abs().max() / b.abs().max()).item()
    return [rel(y, ref)] + [rel(a, b) for a, b in zip(got, want)]


@torch.no_grad()
def randomize_adapters(model, scale: float = 0.02, seed: int = 0):
    """Fill every adapter tensor with N(0, scale^2) values (LoRA's B too), so adapters change the model."""
    g = torch.Generator().manual_seed(seed)
    for layer in adapter_layers(model).values():
        for name in layer.adapter_names:
            p = getattr(layer, name)
            p.add_(torch.randn(p.shape, generator=g) * scale)
    return model


def adapted(base, config: PeftConfig, seed: int = 0):
    """A copy of `base` with `config`'s adapters, filled with random non-zero values."""
    return randomize_adapters(apply_peft(copy.deepcopy(base), config, verbose=False), seed=seed)


def logits(model) -> torch.Tensor:
    """The model's logits on ten fixed tokens."""
    with torch.no_grad():
        return model(torch.arange(10)[None] * 7)
