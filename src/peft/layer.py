"""What every adapter layer shares: the frozen base weight, the forward, merge / unmerge, the contract.

An adapter layer replaces an `nn.Linear(in, out, bias=False)` of RWKV. It adopts the
linear's `weight` parameter (frozen) under the same name, so the adapted model's state
dict keeps every RWKV-LM key and adds the adapter's own (e.g. `blocks.0.att.key.bone`).
On a quantised base (src/quant) it replaces a QuantLinear and adopts its QuantizedWeight
instead: the methods reach W only through `base_forward` (x W^T), `base_weight` (W in fp32)
and `base_rows` (a range of W's rows), which dequantise when W is quantised.

A method is a subclass that sets
    method            its name ("bone"), the key of the registry (registry.py)
    adapter_names     its trainable tensors, e.g. ("bone",)
    file_tensors      what its adapter file holds per layer (adapter_names, plus buffers such as
                      PiSSA's starting point)
    options           the PeftConfig fields that shape or scale it (compared when loading)
    uses              every PeftConfig field it reads, options included (train.py refuses the others'
                      flags for it)
and defines
    from_config(base, config, name, generator, init_weights)   the layer a PeftConfig asks for
    adapted_forward(x)   y = x (W + ΔW)^T, without building the (out, in) update
    delta_weight()       ΔW as an (out, in) fp32 tensor (merging, and the tests' explicit reference)
and may override load_file_tensors(tensors) (taking its tensors from a file).
Adapter parameters are fp32; the adapter arithmetic runs in the activation dtype.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..quant import QuantLinear, QuantizedWeight, quantized_linear

if TYPE_CHECKING:
    from .config import PeftConfig


def wide(t: torch.Tensor) -> torch.Tensor:
    """fp32 for half-precision and fp32 tensors; float64 stays float64 (tests compare in float64)."""
    return t if t.dtype == torch.float64 else t.float()


class AdapterLinear(nn.Module):
    """Base class. `base` is an nn.Linear without bias (or a QuantLinear); its weight becomes this layer's
    frozen `weight`."""

    method = "base"
    adapter_names: tuple[str, ...] = ()
    file_tensors: tuple[str, ...] = ()
    options: tuple[str, ...] = ("r",)
    uses: tuple[str, ...] = ("r",)              # every PeftConfig field it reads (beyond targets, train_parts, seed)
    zero_gradient_hint: str = ""                # why its gradients can all be exactly zero, and what to do

    def __init__(self, base: nn.Linear | QuantLinear, name: str = ""):
        super().__init__()
        if not isinstance(base, (nn.Linear, QuantLinear)):
            raise TypeError(f"{self.method}: {name or 'layer'} is a {type(base).__name__}, expected nn.Linear")
        if base.bias is not None:
            raise ValueError(f"{self.method}: {name or 'layer'} has a bias; RWKV's linear layers have none")
        self.layer_name = name
        self.in_features = base.in_features
        self.out_features = base.out_features
        self.weight = base.weight
        self.weight.requires_grad_(False)
        self.merged = False
        self.disabled = False                   # adapters_disabled(model): the layer computes the base alone

    # --- the contract -------------------------------------------------------------------
    @classmethod
    def from_config(cls, base: nn.Linear, config: "PeftConfig", name: str = "",
                    generator: torch.Generator | None = None, init_weights: bool = True) -> "AdapterLinear":
        raise NotImplementedError

    @classmethod
    def option_values(cls, config: "PeftConfig") -> dict:
        """The values of `options` in `config`, as they act (defaults filled in)."""
        return {k: getattr(config, k) for k in cls.options}

    def adapted_forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def delta_weight(self) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def load_file_tensors(self, tensors: Mapping[str, torch.Tensor]) -> None:
        """Take this layer's tensors from an adapter file ({name in file_tensors: tensor}); a method
        whose held weight depends on them (PiSSA's residual) overrides this."""
        for name, value in tensors.items():
            getattr(self, name).copy_(value)

    # --- the frozen base weight, plain or quantised ---------------------------------------
    @property
    def quantized(self) -> bool:
        return isinstance(self.weight, QuantizedWeight)

    def base_forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in) -> (..., out): x W^T (quantised: Ŵ dequantised for the product, nothing saved)."""
        if self.quantized:
            return quantized_linear(x, self.weight)
        return F.linear(x, self.weight)

    def base_weight(self) -> torch.Tensor:
        """W (out, in) in fp32 (float64 stays float64); quantised, Ŵ as a new tensor."""
        if self.quantized:
            return self.weight.dequantize(torch.float64 if self.weight.dtype == torch.float64 else torch.float32)
        return wide(self.weight)

    def base_rows(self, rows: slice, dtype: torch.dtype) -> torch.Tensor:
        """W[rows] in `dtype` (a view when nothing needs converting; quantised: only those rows dequantised)."""
        if self.quantized:
            return self.weight.dequantize(dtype, rows=rows)
        return self.weight[rows].to(dtype)

    # --- shared -------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in) -> (..., out). Merged, W already holds W + ΔW; disabled (adapters_disabled), the
        base model's layer alone."""
        if self.merged:
            return F.linear(x, self.weight)
        if self.disabled:
            return self.original_forward(x)
        return self.adapted_forward(x)

    def original_forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in) -> (..., out): the base model's layer, x W^T, whatever the adapter holds now. A method
        whose held weight is not the base's (PiSSA holds a residual) overrides this."""
        return self.base_forward(x)

    def _apply(self, fn, recurse: bool = True):
        """Casting the model to a half dtype (model.to(torch.bfloat16), DeepSpeed's bf16 mode)
        converts only the frozen base weight: adapter parameters and buffers stay fp32, moved
        to the new device. Their math still runs in the activation dtype."""
        kept = {name: t.data for name, t in [*self._parameters.items(), *self._buffers.items()]
                if name != "weight" and t is not None}
        super()._apply(fn, recurse)
        for name, old in kept.items():
            new = getattr(self, name)
            if new.dtype in (torch.bfloat16, torch.float16) and old.dtype not in (torch.bfloat16, torch.float16):
                new.data = old.to(device=new.device)
        return self

    def adapter_parameter(self, *shape: int) -> nn.Parameter:
        """A zero fp32 parameter on the base weight's device."""
        return nn.Parameter(torch.zeros(*shape, dtype=torch.float32, device=self.weight.device))

    def where(self) -> str:
        return f"{self.layer_name or 'layer'} ({self.out_features} x {self.in_features})"

    # --- merging (Hugging Face peft's semantics) -----------------------------------------
    @torch.no_grad()
    def merge(self) -> None:
        """W <- W + ΔW, computed in fp32; forward then uses W alone. A quantised W becomes the float
        Ŵ + ΔW (in the dtype it was quantised from): exactly the function the adapter computed."""
        if self.merged:
            return
        if self.quantized:
            held = self.weight
            merged = self.base_weight() + self.merge_update()
            self.weight = nn.Parameter(merged.to(held.dtype), requires_grad=False)
            self.__dict__["quantized_from"] = held       # not a submodule: the merged layer holds W + ΔW alone
        else:
            self.weight.copy_((wide(self.weight) + self.merge_update()).to(self.weight.dtype))
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Back to W and the adapter; a layer merged from a quantised W holds it quantised again."""
        if not self.merged:
            return
        held = getattr(self, "quantized_from", None)
        if held is not None:
            held.requantize_(self.unmerged_weight())
            del self.weight                                   # the parameter, then the module in its place
            self.weight = held
            del self.__dict__["quantized_from"]
        else:
            self.weight.copy_(self.unmerged_weight().to(self.weight.dtype))
        self.merged = False

    def merge_update(self) -> torch.Tensor:
        """What merge() adds to the weight this layer holds (fp32): ΔW, except where the held
        weight is not the original base weight (PiSSA holds the residual)."""
        return self.delta_weight()

    def unmerged_weight(self) -> torch.Tensor:
        """The held weight recovered from the merged one (fp32), for an update independent of W."""
        return wide(self.weight) - self.merge_update()

    def to_linear(self) -> nn.Linear:
        """A plain nn.Linear holding W + ΔW (merging first if needed)."""
        self.merge()
        linear = nn.Linear(self.in_features, self.out_features, bias=False,
                           device=self.weight.device, dtype=self.weight.dtype)
        linear.weight = self.weight
        return linear

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, merged={self.merged}"
