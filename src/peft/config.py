"""PeftConfig: which adapter, where, and what else trains. Serialised as adapter_config.json.

Each field carries its help text and its command-line name (RWKV-PEFT's where it has one),
so train.py's adapter flags come from here: this class is their one source.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Mapping

from ..utils.options import dataclass_from_dict, flag_name, option
from .registry import ADAPTER_CLASSES, PEFT_METHODS, STATE_METHOD, adapter_class

# The eight linear layers of an RWKV-6 block, what `targets=None` means on an RWKV-6 model (each family's
# own list is its Family.default_targets); kept as a name for code written against it.
DEFAULT_TARGETS = ("att.receptance", "att.key", "att.value", "att.gate", "att.output",
                   "ffn.key", "ffn.receptance", "ffn.value")


@dataclass(frozen=True)
class PeftConfig:
    """An adapter configuration; `PeftConfig(method="bone", r=64)` is the paper's Bone;
    `PeftConfig(method="state")` is state tuning alone (no r, no targets)."""

    method: str = option(help="the adapter method (src/peft/registry.py); state: tune only each layer's initial "
                              "WKV state", choices=PEFT_METHODS, flag="peft")
    r: int | None = option(None, "Bone's block width, Bat's block size, LoRA/PiSSA's rank, DiSHA's input-side shard "
                                 "width r2 (none for state tuning)", flag="peft_r")
    alpha: float | None = option(None, "LoRA/PiSSA scaling numerator (scale = alpha / r)", derived="r (scale 1)",
                                 flag="lora_alpha")
    dropout: float = option(0.0, "LoRA/PiSSA dropout on the adapter path", flag="lora_dropout")
    bat_index: str = option("out", "Bat's blocks: one per output block (Hugging Face peft, the paper's Table 4) "
                                   "or one per input block (RWKV-PEFT)", choices=("out", "in"))
    bat_materialize: bool = option(False, "run Bat the paper's way, building W + ΔW through autograd in every "
                                          "layer (the same math; the benchmark's reference for its memory)")
    disha_r1: int | None = option(None, "DiSHA's output-side shard height", derived="the layer's output width "
                                                                                   "(= Bone)")
    pissa_niter: int = option(4, "power iterations of PiSSA's randomised SVD")
    targets: tuple[str, ...] | None = option(None, flag="peft_targets",
                                             derived="every linear layer of the model family's blocks (RWKV-6: "
                                                     "8, RWKV-7: 6), resolved by apply_peft",
                                             help="the linear layers to adapt, matched against module names "
                                                  "('att.key' matches blocks.*.att.key; globs like 'blocks.0.*' or "
                                                  "'att.*' work)")
    train_parts: tuple[str, ...] = option(default_factory=tuple,
                                          help="other parameters that also train: bare words match as substrings, "
                                               "as in RWKV-PEFT ('time', 'ln'); dotted names and globs match "
                                               "whole names")
    train_state: bool = option(False, "also tune each layer's initial WKV state (RWKV-LM's time_state); checkpoints "
                                      "then hold state.pth, a state file RWKV runtimes load (always on with --peft "
                                      "state)")
    seed: int = option(0, "seeds LoRA's Kaiming init and PiSSA's SVD (an explicit generator, no global RNG)",
                       flag=False)

    def __post_init__(self) -> None:
        def bad(name: str, what: str) -> ValueError:
            return ValueError(f"PeftConfig.{name} {what} (flag --{flag_name(FIELDS[name])})")

        for group in ("targets", "train_parts"):           # a string is one pattern, not its characters
            value = getattr(self, group)
            if value is None and group == "targets":           # the model family's linears (apply_peft)
                continue
            if isinstance(value, str):
                value = (value,)
            elif not isinstance(value, (list, tuple)):
                raise bad(group, f"must be a pattern or a list of patterns, got {value!r}")
            object.__setattr__(self, group, tuple(value))
        for name in ("alpha", "dropout"):
            value = getattr(self, name)
            if (value is not None or name == "dropout") and (isinstance(value, bool)
                                                              or not isinstance(value, (int, float))):
                raise bad(name, f"must be a number, got {value!r}")
        if isinstance(self.disha_r1, bool) or isinstance(self.pissa_niter, bool):
            raise bad("disha_r1" if isinstance(self.disha_r1, bool) else "pissa_niter", "must be an integer, not a bool")

        known = (*ADAPTER_CLASSES, STATE_METHOD)              # read now: the registry is the one source
        if self.method not in known:
            raise bad("method", f"must be one of {known}, got {self.method!r}")
        if not isinstance(self.train_state, bool):
            raise bad("train_state", f"must be True or False, got {self.train_state!r}")
        if self.method == STATE_METHOD:                    # no layer adapted: nothing of theirs applies
            if self.r is not None:
                raise bad("r", f"is {self.r!r}, but state tuning adapts no linear layer (leave r out)")
            if self.targets not in (None, ()):
                raise bad("targets", f"is {list(self.targets)}, but state tuning adapts no linear layer")
            object.__setattr__(self, "targets", ())
            object.__setattr__(self, "train_state", True)
        elif not isinstance(self.r, int) or isinstance(self.r, bool) or self.r <= 0:
            raise bad("r", f"must be a positive integer, got {self.r!r}")
        if self.alpha is not None and not (self.alpha > 0 and math.isfinite(self.alpha)):
            raise bad("alpha", f"must be a positive finite number, got {self.alpha!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise bad("dropout", f"must be in [0, 1), got {self.dropout!r}")
        if self.bat_index not in ("out", "in"):
            raise bad("bat_index", f"must be 'out' or 'in', got {self.bat_index!r}")
        if not isinstance(self.bat_materialize, bool):
            raise bad("bat_materialize", f"must be True or False, got {self.bat_materialize!r}")
        if self.disha_r1 is not None and (not isinstance(self.disha_r1, int) or self.disha_r1 <= 0):
            raise bad("disha_r1", f"must be a positive integer or None, got {self.disha_r1!r}")
        if not isinstance(self.pissa_niter, int) or self.pissa_niter < 0:
            raise bad("pissa_niter", f"must be a non-negative integer, got {self.pissa_niter!r}")
        if self.targets == () and self.method != STATE_METHOD:
            raise bad("targets", "is empty: name at least one linear layer to adapt")
        for group in ("targets", "train_parts"):
            for pattern in getattr(self, group) or ():
                if not isinstance(pattern, str) or not pattern:
                    raise bad(group, f"holds {pattern!r}, expected non-empty strings")

    def options(self) -> dict:
        """The method's hyperparameters that shape or scale the adapter (compared when loading)."""
        return {} if self.method == STATE_METHOD else adapter_class(self.method).option_values(self)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["targets"] = None if self.targets is None else list(self.targets)
        d["train_parts"] = list(self.train_parts)
        return d

    @classmethod
    def from_dict(cls, data: Mapping, source: str = "adapter config") -> "PeftConfig":
        return dataclass_from_dict(cls, data, source)

    def replace(self, **changes) -> "PeftConfig":
        return dataclasses.replace(self, **changes)

    def for_family(self, family) -> "PeftConfig":
        """This config with `targets=None` made explicit: the family's default targets (a Family, or a
        model, config or family name: model/family.py). Explicit targets are kept as given."""
        if self.targets is not None:
            return self
        from ..model.family import family_of
        return self.replace(targets=family_of(family).default_targets)


FIELDS = {f.name: f for f in dataclasses.fields(PeftConfig)}
