"""What an export reads: an RWKV .pth of any registered family, memory-mapped, and optionally an adapter
merged into it on the fly, a layer at a time (W + ΔW in fp32, as merge.py computes it).

    source = ExportSource.open("rwkv7-1.5b.pth", adapter="out/bone")
    source.layout()        # [(key, shape)] in the file's order: nothing computed
    source.tensors()       # (key, tensor) one at a time: peak memory about one tensor beyond the mapping
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from ..model import config_from_checkpoint, read_checkpoint
from ..model.family import family_of
from ..peft import read_any_adapter
from ..peft.adapter import Adapter
from ..peft.merge import check_mergeable, merged_tensors


@dataclass
class ExportSource:
    path: Path
    state_dict: dict[str, torch.Tensor]       # memory-mapped
    config: object                            # the family's RWKVConfig
    adapter: Adapter | None = None
    merge_base: str = "full"

    @classmethod
    def open(cls, model: str | Path, adapter: str | Path | None = None, method: str | None = None,
             lora_alpha: float | None = None, pissa_init: str | Path | None = None,
             merge_base: str = "full") -> "ExportSource":
        path = Path(model)
        if path.is_dir():
            raise ValueError(f"--model {path} is a directory; give the .pth file")
        if not path.is_file():
            raise FileNotFoundError(f"--model {path} does not exist")
        sd = read_checkpoint(path)
        config = config_from_checkpoint(sd, source=f"--model {path}")
        found = None
        if adapter is not None:
            found = read_any_adapter(adapter, method, lora_alpha=lora_alpha, pissa_init=pissa_init)
            check_mergeable(sd, path, found, merge_base)
        return cls(path, sd, config, found, merge_base)

    @property
    def family(self):
        return family_of(self.config)

    @property
    def inputs(self) -> tuple[Path, ...]:
        """Every file the export reads (it never writes over one of them)."""
        return (self.path, *(self.adapter.files if self.adapter is not None else ()))

    def layout(self) -> list[tuple[str, tuple[int, ...]]]:
        return [(key, tuple(value.shape)) for key, value in self.state_dict.items()]

    def tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        """(key, tensor), in the file's order; with an adapter the merged weights in fp32."""
        if self.adapter is None:
            yield from self.state_dict.items()
        else:
            yield from merged_tensors(self.state_dict, self.adapter, torch.float32, merge_base=self.merge_base)
