"""State tuning: train each layer's initial WKV state, RWKV-LM's `time_state`.

    apply_peft(model, PeftConfig(method="state"))                   # only the states train
    apply_peft(model, PeftConfig(method="bone", r=64, train_state=True))   # Bone and the states

Every layer's time mix gets a parameter `time_state` (H, N, N), zero at the start (a zero
state is where every sequence starts anyway, so the untrained model is unchanged), stored
as RWKV-LM and RWKV-PEFT store it: [value, key], the layout of a state file (src/model/
state.py), so the trained parameters *are* the state file. The model starts a sequence from
it when no state is passed (each family's time mix turns it into its own layout: state.tuned_start);
the gradient reaches it through the WKV operator's gradient of its initial state.

Runtimes use the result without merging anything: ChatRWKV and the `rwkv` package read a
state file (`blocks.{i}.att.time_state`; for RWKV-6 transposed to its [key, value] state), RWKV Runner
and ai00 load it as a "state" beside the model, and `RWKVState.from_file` reads it here.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

STATE_PARAMETER = "time_state"          # the parameter's name in each layer's time mix (RWKV-LM's)
STATE_FILE = "state.pth"                # what a checkpoint of a state-tuning run holds beside its adapter


def time_mix_layers(model: nn.Module) -> list[nn.Module]:
    """Every block's time mix, in layer order."""
    return [block.att for block in model.blocks]


def add_time_state(model: nn.Module) -> None:
    """Give every time mix a trainable zero `time_state` (H, N, N) in the model's dtype and device."""
    config = model.config
    for att in time_mix_layers(model):
        if getattr(att, STATE_PARAMETER, None) is not None:
            raise ValueError(f"state tuning: layer {att.layer_id} already has a {STATE_PARAMETER}")
        like = att.receptance.weight                       # the model's dtype and device (either family)
        att.register_parameter(STATE_PARAMETER, nn.Parameter(torch.zeros(
            config.n_head, config.head_size, config.head_size, dtype=like.dtype, device=like.device)))


def remove_time_state(model: nn.Module) -> None:
    """Take the `time_state` parameters out again (merge_and_unload: a plain model has none)."""
    for att in time_mix_layers(model):
        if STATE_PARAMETER in att._parameters:
            del att._parameters[STATE_PARAMETER]


def state_file_from(tensors: dict[str, torch.Tensor], config) -> dict[str, torch.Tensor]:
    """A state file of the time_state entries of a {name: tensor} mapping (a checkpoint's fp32 masters,
    say), in fp32, with the record of the model's family and shape (`config`: the model's config)."""
    from ..model.state import STATE_RECORD_KEY, state_record
    states = {k: v.detach().float().cpu().contiguous() for k, v in tensors.items()
              if k.rpartition(".")[2] == STATE_PARAMETER}
    return {**states, STATE_RECORD_KEY: state_record(config.family, config.n_layer, config.n_head, config.head_size)}


@torch.no_grad()
def load_time_state(model: nn.Module, path: str | Path) -> None:
    """Start the tuned states from a state file (ours, RWKV-LM's or RWKV-PEFT's), checked against the model."""
    from ..model.state import read_state_file
    states = read_state_file(path, model.config)
    params = [getattr(att, STATE_PARAMETER, None) for att in time_mix_layers(model)]
    if any(p is None for p in params):
        raise ValueError(f"--load_state {path}: the model has no tuned state to start from it (state tuning is off: "
                         f"use --peft state or --train_state 1)")
    for param, value in zip(params, states):
        param.copy_(value.to(param.dtype))
