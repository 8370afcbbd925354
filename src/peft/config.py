"""PeftConfig: which adapter, where, and what else trains. Serialised as adapter_config.json."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Mapping

from ..config import dataclass_from_dict

METHODS = ("bone", "bat", "disha", "lora", "pissa")

# The eight linear layers of every RWKV6 block (names relative to the block).
DEFAULT_TARGETS = ("att.receptance", "att.key", "att.value", "att.gate", "att.output",
                   "ffn.key", "ffn.receptance", "ffn.value")


@dataclass(frozen=True)
class PeftConfig:
    """method: "bone" | "bat" | "disha" | "lora" | "pissa".
    r: Bone's block width, Bat's block size, LoRA/PiSSA's rank, DiSHA's input-side shard width r2.
    alpha: LoRA/PiSSA scaling numerator (scale = alpha / r); None means alpha = r (scale 1).
    dropout: LoRA dropout on the adapter path.
    bat_index: "out" (one block per output block, peft / the paper) or "in" (per input block, RWKV-PEFT).
    bat_materialize: build W + ΔW through autograd in every Bat layer, as the paper's code does
        (the same math; kept as the benchmark's reference for the memory it costs).
    disha_r1: DiSHA's output-side shard height; None means the layer's full output width (= Bone).
    pissa_niter: power iterations of PiSSA's randomised SVD.
    targets: patterns of the linear layers to adapt, matched against module names
        ("att.key" matches blocks.*.att.key; globs like "blocks.0.*" or "att.*" work).
    train_parts: other parameters that also train: bare words match as substrings, as in
        RWKV-PEFT's --train_parts ("time", "ln"); dotted names and globs match whole names.
    seed: seeds LoRA's Kaiming init and PiSSA's SVD (an explicit generator, no global RNG).
    """

    method: str
    r: int
    alpha: float | None = None
    dropout: float = 0.0
    bat_index: str = "out"
    bat_materialize: bool = False
    disha_r1: int | None = None
    pissa_niter: int = 4
    targets: tuple[str, ...] = DEFAULT_TARGETS
    train_parts: tuple[str, ...] = field(default_factory=tuple)
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", tuple(self.targets))
        object.__setattr__(self, "train_parts", tuple(self.train_parts))
        if self.method not in METHODS:
            raise ValueError(f"PeftConfig.method must be one of {METHODS}, got {self.method!r}")
        if not isinstance(self.r, int) or isinstance(self.r, bool) or self.r <= 0:
            raise ValueError(f"PeftConfig.r must be a positive integer, got {self.r!r}")
        if self.alpha is not None and not self.alpha > 0:
            raise ValueError(f"PeftConfig.alpha must be positive, got {self.alpha!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"PeftConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if self.bat_index not in ("out", "in"):
            raise ValueError(f"PeftConfig.bat_index must be 'out' or 'in', got {self.bat_index!r}")
        if not isinstance(self.bat_materialize, bool):
            raise ValueError(f"PeftConfig.bat_materialize must be True or False, got {self.bat_materialize!r}")
        if self.disha_r1 is not None and (not isinstance(self.disha_r1, int) or self.disha_r1 <= 0):
            raise ValueError(f"PeftConfig.disha_r1 must be a positive integer or None, got {self.disha_r1!r}")
        if not isinstance(self.pissa_niter, int) or self.pissa_niter < 0:
            raise ValueError(f"PeftConfig.pissa_niter must be a non-negative integer, got {self.pissa_niter!r}")
        if not self.targets:
            raise ValueError("PeftConfig.targets is empty: name at least one linear layer to adapt")
        for group in ("targets", "train_parts"):
            for pattern in getattr(self, group):
                if not isinstance(pattern, str) or not pattern:
                    raise ValueError(f"PeftConfig.{group} holds {pattern!r}, expected non-empty strings")

    def options(self) -> dict:
        """The method's hyperparameters that shape or scale the adapter (compared when loading)."""
        keys = {"bone": ("r",), "bat": ("r", "bat_index"), "disha": ("r", "disha_r1"),
                "lora": ("r", "alpha"), "pissa": ("r", "alpha")}[self.method]
        out = {k: getattr(self, k) for k in keys}
        if "alpha" in out and out["alpha"] is None:
            out["alpha"] = float(self.r)
        return out

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["targets"], d["train_parts"] = list(self.targets), list(self.train_parts)
        return d

    @classmethod
    def from_dict(cls, data: Mapping, source: str = "adapter config") -> "PeftConfig":
        return dataclass_from_dict(cls, data, source)

    def replace(self, **changes) -> "PeftConfig":
        return dataclasses.replace(self, **changes)
