"""Putting adapters into an RWKV model: apply_peft, what trains, counting, merge_and_unload."""

from __future__ import annotations

from fnmatch import fnmatchcase

import torch
import torch.nn as nn

from ..quant import QuantizedWeight, is_linear
from .config import PeftConfig
from .layer import AdapterLinear
from .registry import STATE_METHOD, adapter_class
from .state import add_time_state, remove_time_state


def target_matches(name: str, pattern: str) -> bool:
    """'att.key' matches 'blocks.3.att.key'; globs match the whole name or a dotted suffix of it."""
    return fnmatchcase(name, pattern) or fnmatchcase(name, "*." + pattern)


def part_matches(name: str, pattern: str) -> bool:
    """train_parts: a bare word is a substring, RWKV-PEFT's rule ('time' trains every time_*
    tensor, 'ln' every LayerNorm); a dotted name or a glob matches whole names or dotted suffixes."""
    if "." not in pattern and not any(c in pattern for c in "*?["):
        return pattern in name
    return target_matches(name, pattern)


def make_adapter(linear: nn.Linear, config: PeftConfig, name: str,
                 generator: torch.Generator | None = None, init_adapters: bool = True) -> AdapterLinear:
    """The adapter layer `config` asks for around one linear (the registry's class for its method)."""
    return adapter_class(config.method).from_config(linear, config, name, generator=generator,
                                                    init_weights=init_adapters)


def adapter_layers(model: nn.Module) -> dict[str, AdapterLinear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, AdapterLinear)}


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def resolve_targets(config: PeftConfig, family) -> PeftConfig:
    """`targets=None` made explicit for the model family (PeftConfig.for_family)."""
    return config.for_family(family)


def apply_peft(model: nn.Module, config: PeftConfig, init_adapters: bool = True, verbose: bool = True) -> nn.Module:
    """Replace the target linears of `model` by adapter layers, in place, and freeze everything
    except the adapters, the parameters matching `config.train_parts` and, with `config.train_state`
    (always for method "state"), each layer's new initial state `time_state` (state.py). Returns the model.
    `init_adapters=False` skips LoRA's random init and PiSSA's SVD (a loader fills them)."""
    if not isinstance(config, PeftConfig):
        raise ValueError(f"apply_peft: config must be a PeftConfig, got {type(config).__name__} {config!r}")
    if getattr(model, "peft_config", None) is not None:
        raise ValueError(f"apply_peft: this model already has {model.peft_config.method} adapters")
    config = config.for_family(model)                       # targets=None: the family's linear layers
    linears = {name: m for name, m in model.named_modules() if is_linear(m)}     # plain or quantised
    chosen = [name for name in linears if any(target_matches(name, p) for p in config.targets)
              and config.method != STATE_METHOD]
    for pattern in config.targets:
        if not any(target_matches(name, pattern) for name in linears):
            examples = ", ".join(sorted({n.split(".", 2)[-1] for n in linears if n.startswith("blocks.")}))
            raise ValueError(f"apply_peft: target {pattern!r} matches no linear layer; "
                             f"the linear layers of a block are: {examples}")
    generator = torch.Generator().manual_seed(config.seed)
    for name in chosen:
        _set_submodule(model, name, make_adapter(linears[name], config, name, generator, init_adapters))

    model.requires_grad_(False)
    adapters = adapter_layers(model)
    for layer in adapters.values():
        for pname in layer.adapter_names:
            getattr(layer, pname).requires_grad_(True)
    if config.train_state:
        add_time_state(model)                               # new parameters: they train
    frozen_bases = {f"{name}.weight" for name in adapters}
    for pname, param in model.named_parameters():
        if any(part_matches(pname, p) for p in config.train_parts):
            if pname in frozen_bases:
                raise ValueError(f"apply_peft: train_parts pattern matches {pname}, the frozen base weight of an "
                                 f"adapted layer; choose a narrower pattern")
            param.requires_grad_(True)
    for pattern in config.train_parts:
        if not any(part_matches(pname, pattern) for pname, _ in model.named_parameters()):
            raise ValueError(f"apply_peft: train_parts pattern {pattern!r} matches no parameter")
    model.peft_config = config
    if verbose:
        print(trainable_report(model))
    return model


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts, a quantised base's weights included; works on the meta device."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    quantized = sum(m.numel() for m in model.modules() if isinstance(m, QuantizedWeight))
    return trainable, sum(p.numel() for p in model.parameters()) + quantized


def trainable_report(model: nn.Module) -> str:
    trainable, total = count_parameters(model)
    return f"trainable params: {trainable:,d} || all params: {total:,d} || trainable%: {100 * trainable / total:.4f}"


def adapter_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """What an adapter file holds: every trainable tensor (adapters and train_parts) and the
    adapter layers' persistent buffers (PiSSA's starting point), under the model's key names."""
    keep = {name for name, p in model.named_parameters() if p.requires_grad}
    for lname, layer in adapter_layers(model).items():
        keep.update(f"{lname}.{b}" for b, _ in layer.named_buffers(recurse=False))   # not a quantised W's
    return {k: v for k, v in model.state_dict().items() if k in keep}


@torch.no_grad()
def merge_and_unload(model: nn.Module) -> nn.Module:
    """Fold every adapter into its weight (W + ΔW in fp32) and put plain nn.Linear layers back. Tuned
    initial states are not weights: they are removed (save them first, as a state file)."""
    for name, layer in adapter_layers(model).items():
        _set_submodule(model, name, layer.to_linear())
    remove_time_state(model)
    model.peft_config = None
    return model
