"""Adapters for RWKV's linear layers: Bone, Bat, DiSHA, LoRA and PiSSA.

    from src.peft import PeftConfig, apply_peft, save_adapter, load_adapter, merge_and_unload
    model = apply_peft(load_model("rwkv6-3b.pth", dtype=torch.bfloat16), PeftConfig(method="bone", r=64))

    layer.py       AdapterLinear: the frozen base weight, the shared forward, merging, the contract
    registry.py    the methods: name -> layer class (a new method: one file + one entry there)
    bone.py, bat.py, disha.py, lora.py (LoRA and PiSSA)     one method each
    config.py      PeftConfig, also the source of train.py's adapter flags
    apply.py       apply_peft, what trains, merge_and_unload
    adapter.py     Adapter: an adapter read from disk
    adapter_io.py  our adapter directories (save, read, load, find the newest)
    rwkv_peft.py   RWKV-PEFT's .pth adapter files
    disable.py     adapters_disabled(model): the base model inside an adapted one (a free reference)
    state.py       state tuning: each layer's trained initial state (time_state), state.pth
    merge.py       base .pth + adapter -> plain .pth (merge.py at the top level)
"""

from .adapter import Adapter
from .adapter_io import find_adapter, load_adapter, read_adapter, read_any_adapter, save_adapter
from .apply import (adapter_layers, adapter_state_dict, apply_peft, count_parameters, make_adapter,
                    merge_and_unload, trainable_report)
from .bat import BatLinear
from .bone import BoneLinear
from .config import DEFAULT_TARGETS, PeftConfig
from .disable import adapters_disabled, has_adapters
from .disha import DishaLinear
from .layer import AdapterLinear
from .lora import LoraLinear, PissaLinear
from .registry import ADAPTER_CLASSES, METHODS, adapter_class
from .rwkv_peft import read_rwkv_peft_adapter

__all__ = ["AdapterLinear", "BoneLinear", "BatLinear", "DishaLinear", "LoraLinear", "PissaLinear", "PeftConfig",
           "METHODS", "DEFAULT_TARGETS", "ADAPTER_CLASSES", "adapter_class", "apply_peft", "make_adapter",
           "adapter_layers", "adapter_state_dict", "count_parameters", "trainable_report", "merge_and_unload",
           "Adapter", "save_adapter", "load_adapter", "read_adapter", "read_any_adapter", "read_rwkv_peft_adapter",
           "find_adapter", "adapters_disabled", "has_adapters"]
