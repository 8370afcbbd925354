"""RWKV-PEFT's adapter files, read as our Adapter.

RWKV-PEFT writes one .pth (rwkv-N.pth in its proj_dir) with keys ending in .lora_A /
.lora_B, .bone, or .disha (2-D: Bone; 3-D: Bat with one block per input block), plus the
train_parts tensors under their base names; PiSSA's start is in a separate init_pissa.pth.
It records neither the method nor LoRA's alpha: the caller says them.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from .adapter import Adapter
from .config import PeftConfig
from .registry import adapter_class
from .state import STATE_PARAMETER
from ..model.state import STATE_RECORD_KEY
from ..utils.files import load_tensor_file


# The methods RWKV-PEFT writes files of (generate.py, eval.py and merge.py offer these for a bare .pth)
RWKV_PEFT_METHODS = ("bone", "bat", "lora", "pissa")


def read_rwkv_peft_adapter(path: str | Path, method: str, lora_alpha: float | None = None,
                           pissa_init: str | Path | None = None) -> Adapter:
    """Read an RWKV-PEFT checkpoint (one .pth) as an Adapter of `method`.

    bone: keys .bone, or 2-D .disha; bat: 3-D .disha (or .bat), one block per input block
    (bat_index="in"); lora: .lora_A/.lora_B, with lora_alpha (RWKV-PEFT does not store it);
    pissa: .lora_A/.lora_B plus .init_lora_A/.init_lora_B from `pissa_init` (its
    init_pissa.pth), scale 1 as RWKV-PEFT trains it. Other keys are train_parts tensors.
    """
    path = Path(path)
    raw = load_tensor_file(path, "RWKV-PEFT adapter")
    tensors: dict[str, torch.Tensor] = {}
    ranks = set()
    found = set()
    for key, value in raw.items():
        if key == STATE_RECORD_KEY:                       # a state file of ours given as one: not a train part
            continue
        module, _, leaf = key.rpartition(".")
        wanted_dims = {"bone": (2, 3), "disha": (2, 3), "bat": (3,), "lora_A": (2,), "lora_B": (2,)}.get(leaf)
        if wanted_dims and value.dim() not in wanted_dims:
            raise ValueError(f"RWKV-PEFT adapter {path}: {key} has shape {tuple(value.shape)}, expected "
                             f"{' or '.join(f'{d}-D' for d in wanted_dims)}")
        if leaf in ("bone", "disha", "bat"):
            kind = "bat" if value.dim() == 3 else "bone"
            found.add(kind)
            ranks.add(int(value.shape[-1] if kind == "bat" else value.shape[0]))
            tensors[f"{module}.{kind}"] = value
        elif leaf in ("lora_A", "lora_B"):
            found.add("lora")
            if leaf == "lora_A":
                ranks.add(int(value.shape[0]))
            tensors[key] = value
        else:
            tensors[key] = value
    wanted = "lora" if method in ("lora", "pissa") else method
    if method not in RWKV_PEFT_METHODS:
        raise ValueError(f"RWKV-PEFT adapters are {', '.join(RWKV_PEFT_METHODS)}; got method {method!r}")
    if found != {wanted}:
        raise ValueError(f"{path}: holds {sorted(found) or 'no'} adapter tensors, expected {wanted} for --{method}")
    if len(ranks) != 1:
        raise ValueError(f"{path}: adapter tensors of several ranks {sorted(ranks)}")
    r = ranks.pop()
    if method == "lora" and lora_alpha is None:
        raise ValueError(f"{path}: RWKV-PEFT LoRA files do not record lora_alpha; pass it (--lora_alpha)")
    if method == "pissa":
        if pissa_init is None:
            raise ValueError(f"{path}: a PiSSA adapter needs RWKV-PEFT's init_pissa.pth (--pissa_init)")
        init = load_tensor_file(Path(pissa_init), "RWKV-PEFT PiSSA start (--pissa_init)")
        for key, value in init.items():
            if key.endswith(".init_lora_A") or key.endswith(".init_lora_B"):
                tensors[key] = value
    layer_class = adapter_class(method)
    modules = sorted({k.rpartition(".")[0] for k in tensors if k.rpartition(".")[2] in layer_class.adapter_names})
    states = {k for k in tensors if k.rpartition(".")[2] == STATE_PARAMETER}      # RWKV-PEFT's --train_type state
    extras = sorted(k for k in tensors if k.rpartition(".")[2] not in layer_class.file_tensors and k not in states)
    config = PeftConfig(method=method, r=r, alpha=(float(r) if method == "pissa" else lora_alpha),
                        bat_index="in", targets=tuple(modules), train_parts=tuple(extras), train_state=bool(states))
    step = int(m.group(1)) if (m := re.search(r"rwkv-(\d+)\.pth$", path.name)) else None
    files = (path, Path(pissa_init)) if pissa_init is not None else (path,)
    return Adapter(config, tensors, None, step, path, "RWKV-PEFT", files=files)
