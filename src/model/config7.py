"""RWKV7 model configuration: one explicit object, no environment variables (as config.py for RWKV6).

Architecture fields describe the shapes stored in a checkpoint; every low-rank width is read
from the checkpoint when loading one (the released models' widths changed during 2025), and
only a random initialisation falls back on RWKV-LM's rule for them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, Mapping

import torch

from ..utils.options import dataclass_from_dict
from ..utils.paths import MODEL_PRESETS
from ..wkv7 import BACKENDS as WKV7_BACKENDS


def lora_width(n_embd: int, factor: float) -> int:
    """RWKV-LM's rule for a new model: max(32, round(factor * sqrt(C) / 32) * 32)."""
    return max(32, int(round(factor * n_embd ** 0.5 / 32)) * 32)


@dataclass(frozen=True)
class RWKV7Config:
    """Shapes of an RWKV7 ("x070", Goose) model, plus how to run it.

    n_layer, n_embd, vocab_size: the usual sizes; head_size 64 (heads = n_embd // 64).
    dim_ffn: channel-mix hidden width (4 * n_embd).
    d_decay_lora, d_aaa_lora, d_mv_lora, d_gate_lora: widths of the low-rank maps of the decay
        (w1: C x d), the in-context learning rate (a1), the value residual (v1) and the gate (g1);
        None: RWKV-LM's rule from n_embd (2.5, 2.5, 1.7 and 5 x sqrt(C), multiples of 32).
    grad_cp: recompute each block in backward (non-reentrant activation checkpointing).
    wkv_backend: the WKV7 implementation (src/wkv7).
    """

    family: ClassVar[str] = "x070"

    n_layer: int
    n_embd: int
    vocab_size: int = 65536
    head_size: int = 64
    dim_ffn: int | None = None
    d_decay_lora: int | None = None
    d_aaa_lora: int | None = None
    d_mv_lora: int | None = None
    d_gate_lora: int | None = None
    grad_cp: bool = False
    wkv_backend: str = "auto"

    def __post_init__(self) -> None:
        C = self.n_embd
        defaults = {"dim_ffn": 4 * C if isinstance(C, int) else None,
                    "d_decay_lora": lora_width(C, 2.5) if isinstance(C, int) else None,
                    "d_aaa_lora": lora_width(C, 2.5) if isinstance(C, int) else None,
                    "d_mv_lora": lora_width(C, 1.7) if isinstance(C, int) else None,
                    "d_gate_lora": lora_width(C, 5.0) if isinstance(C, int) else None}
        for name, value in defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        for name in ("n_layer", "n_embd", "vocab_size", "head_size", "dim_ffn", "d_decay_lora", "d_aaa_lora",
                     "d_mv_lora", "d_gate_lora"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"RWKV7Config.{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.head_size:
            raise ValueError(f"RWKV7Config: n_embd={self.n_embd} is not a multiple of head_size={self.head_size}")
        if self.wkv_backend not in WKV7_BACKENDS:
            raise ValueError(f"RWKV7Config.wkv_backend must be one of {WKV7_BACKENDS}, got {self.wkv_backend!r}")
        if not isinstance(self.grad_cp, bool):
            raise ValueError(f"RWKV7Config.grad_cp must be True or False, got {self.grad_cp!r}")

    @property
    def n_head(self) -> int:
        return self.n_embd // self.head_size

    @property
    def dim_att(self) -> int:
        return self.n_embd

    def replace(self, **changes) -> "RWKV7Config":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def shape_signature(self) -> dict:
        """The architecture fields only (and the family): what a checkpoint's shapes determine."""
        keys = ("n_layer", "n_embd", "vocab_size", "head_size", "dim_ffn", "d_decay_lora", "d_aaa_lora",
                "d_mv_lora", "d_gate_lora")
        return {"family": self.family, **{k: getattr(self, k) for k in keys}}

    @classmethod
    def from_dict(cls, data: Mapping, source: str = "config") -> "RWKV7Config":
        data = {k: v for k, v in data.items() if k != "family"}
        return dataclass_from_dict(cls, data, source)

    @classmethod
    def preset(cls, name: str, **overrides) -> "RWKV7Config":
        """A shipped preset: configs/model/rwkv7-<name>.json ('tiny', then the released G1 shapes '0.1b',
        '0.4b', '1.5b', '2.9b', '7.2b', '13.3b'; 'rwkv7-1.5b' works too)."""
        import json
        path = MODEL_PRESETS / f"rwkv7-{name.removeprefix('rwkv7-')}.json"
        if not path.exists():
            names = sorted(p.stem for p in MODEL_PRESETS.glob("rwkv7-*.json"))
            raise ValueError(f"unknown RWKV7 preset {name!r}; available: {names}")
        return cls.from_dict(json.loads(path.read_text()), source=str(path)).replace(**overrides)

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint",
                        **runtime) -> "RWKV7Config":
        """Infer every size from the shapes of an RWKV7 state dict (RWKV-LM key names)."""
        required = ("emb.weight", "blocks.0.att.r_k", "blocks.0.att.w1", "blocks.0.att.a1", "blocks.0.att.v1",
                    "blocks.0.att.g1", "blocks.0.ffn.key.weight")
        missing = [k for k in required if k not in state_dict]
        if missing:
            hint = " (this looks like an RWKV6 checkpoint)" if "blocks.0.att.time_faaaa" in state_dict else ""
            raise ValueError(f"{source}: not an RWKV7 checkpoint, missing key(s) {missing}{hint}")
        layer_ids = {int(k.split(".")[1]) for k in state_dict if k.startswith("blocks.")}
        vocab_size, n_embd = state_dict["emb.weight"].shape
        n_head, head_size = state_dict["blocks.0.att.r_k"].shape
        return cls(n_layer=max(layer_ids) + 1, n_embd=int(n_embd), vocab_size=int(vocab_size),
                   head_size=int(head_size), dim_ffn=int(state_dict["blocks.0.ffn.key.weight"].shape[0]),
                   d_decay_lora=int(state_dict["blocks.0.att.w1"].shape[1]),
                   d_aaa_lora=int(state_dict["blocks.0.att.a1"].shape[1]),
                   d_mv_lora=int(state_dict["blocks.0.att.v1"].shape[1]),
                   d_gate_lora=int(state_dict["blocks.0.att.g1"].shape[1]), **runtime)
