"""The adapter methods, one entry each: method name -> AdapterLinear subclass.

A new method is one file (a subclass of layer.AdapterLinear: see its docstring for the
contract) and one entry here. Everything else (PeftConfig's choices, apply_peft, adapter
files, merge.py, train.py's --peft, the benchmark's --methods) reads this table.

Beside the linear-layer methods, "state" is state tuning alone (state.py): no linear layer
is adapted, each layer's initial WKV state trains (`train_state`, which any method can add).
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
STATE_METHOD = "state"                     # state tuning alone: no adapter layers
# state tuning's AdapterLinear.zero_gradient_hint
STATE_ZERO_GRADIENT_HINT = ("the initial states reach the loss only through each layer's att.output weight, which "
                            "RWKV-LM's random init makes zero: state-tune a trained base (--load_model)")
PEFT_METHODS = (*METHODS, STATE_METHOD)


def adapter_class(method: str) -> type[AdapterLinear]:
    if method == STATE_METHOD:
        raise ValueError("state tuning adapts no linear layer: it has no adapter class")
    if method not in ADAPTER_CLASSES:
        raise ValueError(f"unknown adapter method {method!r}; known: {', '.join(METHODS)}")
    return ADAPTER_CLASSES[method]


def layer_tensor_names(method: str) -> tuple[str, ...]:
    """The tensor names an adapter layer of `method` writes to a file (none for state tuning)."""
    return () if method == STATE_METHOD else adapter_class(method).file_tensors
