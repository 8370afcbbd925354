"""An adapter read from disk, whatever wrote it: its config, its tensors, what it was trained on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .config import PeftConfig
from .state import STATE_PARAMETER
from .registry import layer_tensor_names


@dataclass
class Adapter:
    config: PeftConfig
    tensors: dict[str, torch.Tensor]        # under the model's key names (blocks.0.att.key.bone, ...)
    base_model: dict | None                 # the base's shape signature, when the file records it
    step: int | None
    source: Path
    origin: str                             # "ours" (adapter_io.ORIGIN) or "RWKV-PEFT"
    files: tuple[Path, ...] = ()            # the files it was read from (a command never writes over them)
    base_fingerprint: str | None = None     # utils.files.file_fingerprint of the base it was trained on, if known
    quant: dict | None = None               # the base's quantisation while training (QuantScheme.record()), if any

    @property
    def quant_scheme(self):
        """The QuantScheme the adapter was trained under, or None (a full-precision base)."""
        from ..quant import QuantScheme
        return QuantScheme.from_record(self.quant) if self.quant else None

    def layer_tensors(self) -> dict[str, dict[str, torch.Tensor]]:
        """{module name: {adapter tensor name: tensor}} for the adapter tensors."""
        names = layer_tensor_names(self.config.method)
        layers: dict[str, dict[str, torch.Tensor]] = {}
        for key, value in self.tensors.items():
            module, _, leaf = key.rpartition(".")
            if leaf in names:
                layers.setdefault(module, {})[leaf] = value
        return layers

    def extra_tensors(self) -> dict[str, torch.Tensor]:
        """The train_parts tensors (base key names), copied over the base when merging."""
        names = (*layer_tensor_names(self.config.method), STATE_PARAMETER)
        return {k: v for k, v in self.tensors.items() if k.rpartition(".")[2] not in names}

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The tuned initial states (blocks.{i}.att.time_state, a state file's tensors), if any."""
        return {k: v for k, v in self.tensors.items() if k.rpartition(".")[2] == STATE_PARAMETER}
