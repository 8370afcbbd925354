"""ai00 / web-rwkv's .st: the safetensors layout ai00's own converter (assets/scripts/convert_safetensors.py)
makes from an RWKV-LM .pth, for RWKV-6 and RWKV-7 alike, and the same for a state file.

The rules, applied to each key and tensor of the .pth:
    renames       time_faaaa -> time_first, time_maa -> time_mix, lora_A -> lora.0, lora_B -> lora.1
    lower case    every key
    transposed    the last two dimensions of every tensor whose new key contains one of time_mix_w1,
                  time_mix_w2, time_decay_w1, time_decay_w2 (RWKV-6's low-rank mixing and decay), w1, w2,
                  a1, a2, g1, g2, v1, v2 (RWKV-7's low-rank matrices), time_state, lora.0
    dtype         fp16, every tensor
    metadata      {"format": "pt"}
A state file holds blocks.{i}.att.time_state (H, N, N) under the same rules; our record tensor
(rwkv_state_record) is not part of it.
"""

from __future__ import annotations

import torch

RENAMES = (("time_faaaa", "time_first"), ("time_maa", "time_mix"), ("lora_A", "lora.0"), ("lora_B", "lora.1"))
TRANSPOSED = ("time_mix_w1", "time_mix_w2", "time_decay_w1", "time_decay_w2", "w1", "w2", "a1", "a2", "g1", "g2",
              "v1", "v2", "time_state", "lora.0")         # matched anywhere in the new key, as ai00 matches them
METADATA = {"format": "pt"}
DTYPE = torch.float16


def st_name(key: str) -> str:
    for old, new in RENAMES:
        key = key.replace(old, new)
    return key.lower()


def transposed(name: str) -> bool:
    """Whether the tensor named `name` (already renamed) has its last two dimensions swapped."""
    return any(part in name for part in TRANSPOSED)


def st_shape(name: str, shape: tuple) -> tuple:
    shape = tuple(shape)
    if transposed(name) and len(shape) >= 2:
        return (*shape[:-2], shape[-1], shape[-2])
    return shape


def st_tensor(name: str, tensor: torch.Tensor) -> torch.Tensor:
    """The tensor as the .st holds it: transposed when the rules say, fp16, contiguous."""
    if transposed(name) and tensor.dim() >= 2:
        tensor = tensor.transpose(-1, -2)
    return tensor.to(DTYPE).contiguous()


def export_model(source, out, dtype: str = "f16") -> int:
    """Write `source` (an ExportSource) as ai00's .st at `out`; returns the number of tensors."""
    from .safetensors_file import write_safetensors
    names = [(key, st_name(key)) for key, _ in source.layout()]
    seen: dict[str, str] = {}
    for key, name in names:
        if name in seen:
            raise ValueError(f"--format st: {key} and {seen[name]} both become {name}")
        seen[name] = key
    layout = [(st_name(key), DTYPE, st_shape(st_name(key), shape)) for key, shape in source.layout()]
    write_safetensors(out, layout, ((st_name(key), st_tensor(st_name(key), t)) for key, t in source.tensors()),
                      METADATA)
    return len(layout)


def export_state(layers: list[torch.Tensor], out) -> int:
    """Write a state (per layer (H, N, N) as a state file stores it) as the .st ai00 loads beside a model."""
    from .safetensors_file import write_safetensors
    named = [(st_name(f"blocks.{i}.att.time_state"), wkv) for i, wkv in enumerate(layers)]
    layout = [(name, DTYPE, st_shape(name, tuple(wkv.shape))) for name, wkv in named]
    write_safetensors(out, layout, ((name, st_tensor(name, wkv)) for name, wkv in named), METADATA)
    return len(layout)
