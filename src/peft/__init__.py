"""Adapters for RWKV6's linear layers: Bone, Bat, DiSHA, LoRA and PiSSA.

    from src.peft import PeftConfig, apply_peft, save_adapter, load_adapter
    model = apply_peft(load_rwkv6("rwkv6-3b.pth", dtype=torch.bfloat16), PeftConfig(method="bone", r=64))
"""

from .adapter_io import find_adapter, load_adapter, read_adapter, read_rwkv_peft_adapter, save_adapter
from .apply import (adapter_layers, adapter_state_dict, apply_peft, count_parameters, merge_and_unload,
                    trainable_report)
from .bat import BatLinear
from .bone import BoneLinear
from .config import DEFAULT_TARGETS, METHODS, PeftConfig
from .disha import DishaLinear
from .layer import AdapterLinear
from .lora import LoraLinear

ADAPTER_CLASSES = {"bone": BoneLinear, "bat": BatLinear, "disha": DishaLinear, "lora": LoraLinear,
                   "pissa": LoraLinear}

__all__ = ["AdapterLinear", "BoneLinear", "BatLinear", "DishaLinear", "LoraLinear", "PeftConfig", "METHODS",
           "DEFAULT_TARGETS", "ADAPTER_CLASSES", "apply_peft", "adapter_layers", "adapter_state_dict",
           "count_parameters", "trainable_report", "merge_and_unload", "save_adapter", "load_adapter",
           "read_adapter", "read_rwkv_peft_adapter", "find_adapter"]
