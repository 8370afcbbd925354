"""The base model inside an adapted one, for free: `adapters_disabled(model)`.

    with torch.no_grad(), adapters_disabled(model):
        reference_logits = model(idx)          # the base model's logits: every adapter and tuned state off

Preference and reward tuning (src/align) compare the policy (base + adapters) with a reference, the
model before tuning. With adapters the reference is already in memory: the frozen base weights. Inside
the context every adapter layer computes its original base layer (AdapterLinear.original_forward:
x W^T, or for PiSSA the residual plus its starting point) and every layer's tuned initial state
(state tuning's time_state) is put aside, so sequences start from zeros as the base model's do. No
weight is copied, and nothing about the model changes: on leaving, the adapters are back exactly as
they were (also after an exception). Under DeepSpeed ZeRO-3 the same partitioned parameters serve both.

A layer merged into its weight (merge_and_unload, layer.merge) no longer holds its base weight apart:
it is refused, as is a full fine-tune (no adapters at all), whose reference needs a second model.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch.nn as nn

from .apply import adapter_layers
from .state import STATE_PARAMETER, time_mix_layers

HELD = "_time_state_held"          # where a time mix keeps its tuned state while it is put aside


def has_adapters(model: nn.Module) -> bool:
    """Whether the model holds anything adapters_disabled can switch off (adapter layers or tuned states)."""
    return bool(adapter_layers(model)) or any(STATE_PARAMETER in att._parameters or HELD in att.__dict__
                                              for att in time_mix_layers(model))


@contextmanager
def adapters_disabled(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block, `model` computes its base model: adapter layers their original layer, no tuned
    initial states. Works for every method and for state tuning; nests (an inner block leaves the model
    disabled). Raises ValueError for a model without adapters or with a merged layer."""
    layers = adapter_layers(model)
    atts = [att for att in time_mix_layers(model) if STATE_PARAMETER in att._parameters]
    already = any(HELD in att.__dict__ for att in time_mix_layers(model))    # inside an outer block
    if not layers and not atts and not already:
        raise ValueError("adapters_disabled: the model holds no adapters or tuned states (a full fine-tune has no "
                         "base model inside it)")
    merged = [name for name, layer in layers.items() if layer.merged]
    if merged:
        raise ValueError(f"adapters_disabled: {merged[0]}{f' and {len(merged) - 1} more' if len(merged) > 1 else ''} "
                         f"is merged into its weight, which no longer holds the base: unmerge it first")
    was = {name: layer.disabled for name, layer in layers.items()}
    # the tuned states are taken out of their modules (not copied): the time mix then starts from zeros
    for att in atts:
        att.__dict__[HELD] = att._parameters.pop(STATE_PARAMETER)
    for layer in layers.values():
        layer.disabled = True
    try:
        yield model
    finally:
        for name, layer in layers.items():
            layer.disabled = was[name]
        for att in atts:
            att._parameters[STATE_PARAMETER] = att.__dict__.pop(HELD)
