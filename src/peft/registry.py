"""The adapter methods, one entry each: method name -> AdapterLinear subclass.

A new method is one file (a subclass of layer.AdapterLinear: see its docstring for the
contract) and one entry here. Everything else (PeftConfig's choices, apply_peft, adapter
files, merge.py, train.py's --peft, the benchmark's --methods) reads this table.
"""

from __future__ import annotations

from .bat import BatLinear
from .bone import BoneLinear
from .disha import DishaLinear
from .layer import AdapterLinear
from .lora import LoraLinear, PissaLinear

ADAPTER_CLASSES: dict[str, type[AdapterLinear]] = {
    cls.method: cls for cls in (BoneLinear, BatLinear, DishaLinear, LoraLinear, PissaLinear)
}
METHODS = tuple(ADAPTER_CLASSES)


def adapter_class(method: str) -> type[AdapterLinear]:
    if method not in ADAPTER_CLASSES:
        raise ValueError(f"unknown adapter method {method!r}; known: {', '.join(METHODS)}")
    return ADAPTER_CLASSES[method]
