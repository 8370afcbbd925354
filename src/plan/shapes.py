"""The model the planner plans for: its config, and its tensors' bytes, from the family's own code.

    config = model_config("rwkv7-13.3b")            # a preset, a config .json, or a .pth (shapes memory-mapped)
    model = meta_model(config, PeftConfig("bone", r=64), torch.bfloat16)   # on the meta device: no memory
    tensors = tensor_bytes(model, QuantScheme("nf4"))  # frozen / trainable bytes, the largest linear, ...

The network is built on the meta device by its family's class (src/model/checkpoint.py
build_model) and the adapters are put in by src/peft's apply_peft, exactly as training does, then
cast the way training casts it (bf16: every tensor but the adapters' and their buffers, which
AdapterLinear keeps fp32, src/peft/layer.py). Nothing here knows a family's or a method's shapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from ..model import build_model, config_from_checkpoint, read_checkpoint, resolve_config
from ..peft import PeftConfig, apply_peft
from ..peft.layer import AdapterLinear


def model_config(spec: str):
    """--model: a preset name ('rwkv7-13.3b', '3b'), a config .json, or a .pth checkpoint (its shapes, read
    memory-mapped: nothing is loaded)."""
    if spec.endswith(".pth"):
        if not Path(spec).is_file():
            raise FileNotFoundError(f"--model {spec}: no such checkpoint")
        return config_from_checkpoint(read_checkpoint(spec), source=spec)
    if spec.endswith(".json") and not Path(spec).is_file():
        raise FileNotFoundError(f"--model {spec}: no such config file")
    try:
        return resolve_config(spec)
    except ValueError as e:
        raise ValueError(f"--model {spec}: {e}") from None


def meta_model(config, peft: PeftConfig | None, dtype: torch.dtype, **runtime) -> nn.Module:
    """The network with its adapters on the meta device, cast to `dtype` as training casts it, in train mode.
    peft None: full fine-tuning (every parameter trains)."""
    with torch.device("meta"):
        model = build_model(config.replace(**runtime) if runtime else config)
    if peft is None:
        model.requires_grad_(True)
    else:
        apply_peft(model, peft, init_adapters=False, verbose=False)
    return model.to(dtype).train()


@dataclass(frozen=True)
class TensorBytes:
    """What the model's tensors occupy, before any partitioning."""

    frozen: int                       # frozen parameters and buffers (quantised linears as the scheme holds them)
    trainable: int                    # trainable parameters, in their own dtypes
    trainable_count: int              # how many trainable values
    trainable_dtypes: tuple[int, ...]  # the element sizes of the trainable parameters (one gradient bucket each)
    largest_linear: tuple[int, int]   # (out, in) of the largest quantised linear (0, 0 without quantisation)
    largest_block: int                # bytes of the largest block's parameters (ZeRO-3 gathers a block at a time)


def tensor_bytes(model: nn.Module, quant=None) -> TensorBytes:
    """The bytes of a (meta) model's tensors; `quant` (src.quant.scheme.QuantScheme or None): the linear
    weights it quantises count `quant.weight_bytes(out, in)` instead of their dtype's."""
    quantized: dict[str, tuple[int, int]] = {}           # weight key -> (out, in)
    if quant is not None:
        for name, module in model.named_modules():
            if isinstance(module, (nn.Linear, AdapterLinear)) and quant.quantizes(name):
                quantized[f"{name}.weight"] = (module.out_features, module.in_features)
    frozen = trainable = count = 0
    sizes: set[int] = set()
    for name, p in model.named_parameters():
        if p.requires_grad:
            trainable += p.numel() * p.element_size()
            count += p.numel()
            sizes.add(p.element_size())
        elif name in quantized:
            frozen += quant.weight_bytes(*quantized[name])
        else:
            frozen += p.numel() * p.element_size()
    frozen += sum(b.numel() * b.element_size() for b in model.buffers())
    largest = max(quantized.values(), key=lambda s: s[0] * s[1], default=(0, 0))
    blocks = getattr(model, "blocks", [])
    block = max((sum(p.numel() * p.element_size() for p in b.parameters()) for b in blocks), default=0)
    return TensorBytes(frozen, trainable, count, tuple(sorted(sizes)), largest, block)
