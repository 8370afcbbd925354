"""Quantising a model's frozen linear layers: QuantLinear, and the rule for which layers.

    model = quantize_model(model, QuantScheme("nf4"))       # in place: every block linear (and the head with head=True)
    quantized_modules(model)                                # {name: QuantizedWeight}

QuantLinear stands where an nn.Linear(in, out, bias=False) was; its `weight` is a QuantizedWeight, so
the state dict reads `<layer>.weight.codes` / `.weight.absmax`. Adapter layers take a QuantLinear as
their base like an nn.Linear (peft/layer.py) and keep its quantised weight.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .scheme import QuantScheme
from .weight import QuantizedWeight, quantized_linear


class QuantLinear(nn.Module):
    def __init__(self, weight: QuantizedWeight):
        super().__init__()
        self.weight = weight
        self.out_features, self.in_features = weight.shape
        self.bias = None

    @classmethod
    def from_linear(cls, linear: nn.Linear, scheme: QuantScheme, name: str = "layer") -> "QuantLinear":
        if linear.bias is not None:
            raise ValueError(f"{scheme.flag}: layer {name} has a bias; RWKV's linear layers have none")
        return cls(QuantizedWeight.from_float(linear.weight, scheme, name))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return quantized_linear(x, self.weight)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


def is_linear(module: nn.Module) -> bool:
    """A linear layer adapters can wrap: nn.Linear or its quantised stand-in."""
    return isinstance(module, (nn.Linear, QuantLinear))


def linears_to_quantize(model: nn.Module, scheme: QuantScheme) -> dict[str, nn.Linear]:
    """The plain linear layers the scheme holds quantised, by module name."""
    return {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear) and scheme.quantizes(name)}


def check_quantizable(model: nn.Module, scheme: QuantScheme) -> None:
    """Every layer the scheme would quantise can take it (shapes only: works on the meta device)."""
    for name, linear in linears_to_quantize(model, scheme).items():
        scheme.check_shape(name, linear.out_features, linear.in_features)


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


@torch.no_grad()
def quantize_model(model: nn.Module, scheme: QuantScheme) -> nn.Module:
    """Replace the scheme's linear layers by QuantLinear, one at a time (each float weight is freed as
    soon as it is quantised), in place; records the scheme as model.quant_scheme. Returns the model."""
    check_quantizable(model, scheme)
    for name, linear in linears_to_quantize(model, scheme).items():
        _set_submodule(model, name, QuantLinear.from_linear(linear, scheme, name))
    model.quant_scheme = scheme
    return model


def quantized_modules(model: nn.Module) -> dict[str, QuantizedWeight]:
    """{module name of the layer: its QuantizedWeight} (for adapter layers the name of the adapter layer)."""
    return {name.removesuffix(".weight"): m for name, m in model.named_modules() if isinstance(m, QuantizedWeight)}


def quantized_tensor_names(model: nn.Module) -> list[str]:
    """The quantised weights as an adapter file records them: `att.key.weight` for every block's
    att.key, `head.weight`; the block index dropped."""
    names = []
    for name in quantized_modules(model):
        parts = name.split(".")
        short = ".".join(parts[2:]) if parts[0] == "blocks" and len(parts) > 2 else name
        if f"{short}.weight" not in names:
            names.append(f"{short}.weight")
    return names


def quant_record(model: nn.Module) -> dict | None:
    """What an adapter file records of its base's quantisation (None: not quantised): the scheme, the
    tensors, and the dtype they were quantised from (a merge or a check quantises the same way)."""
    scheme = getattr(model, "quant_scheme", None)
    weights = [m for m in model.modules() if isinstance(m, QuantizedWeight)]
    if scheme is None or not weights:
        return None
    names = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16", torch.float64: "fp64"}
    return {**scheme.record(quantized_tensor_names(model)), "dtype": names[weights[0].source_dtype]}
