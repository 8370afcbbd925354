"""RWKV6 model configuration: one explicit object, no environment variables.

Architecture fields describe the shapes stored in a checkpoint; runtime fields
(`grad_cp`, `wkv_backend`, `wkv_chunk_size`) say how to run it. Two models built
from two different configs coexist in one process.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Mapping

import torch

from ..utils.options import dataclass_from_dict
from ..utils.paths import MODEL_PRESETS
from ..wkv6 import BACKENDS as WKV_BACKENDS


@dataclass(frozen=True)
class RWKV6Config:
    """Shapes of an RWKV6 ("x060") model, plus how to run it.

    n_layer, n_embd, vocab_size: the usual sizes.
    dim_att: width of r/k/v/g (C, n_embd when None); heads = dim_att // head_size.
    dim_ffn: channel-mix hidden width (RWKV-LM default: int(3.5 * n_embd) // 32 * 32).
    d_mix_lora: width of the token-shift mixing LoRA (`time_maa_w1` is (C, 5 * d_mix_lora)).
    d_decay_lora: width of the data-dependent decay LoRA (`time_decay_w1` is (C, d_decay_lora)).
    grad_cp: recompute each block in backward (non-reentrant activation checkpointing).
    wkv_backend: "auto" (cuda kernel for bf16 CUDA tensors, chunked otherwise),
        "naive", "chunked" or "cuda".
    wkv_chunk_size: chunk length of the chunked backend.
    """

    family: ClassVar[str] = "x060"

    n_layer: int
    n_embd: int
    vocab_size: int = 65536
    dim_att: int | None = None
    dim_ffn: int | None = None
    head_size: int = 64
    d_mix_lora: int = 32
    d_decay_lora: int = 64
    grad_cp: bool = False
    wkv_backend: str = "auto"
    wkv_chunk_size: int = 16

    def __post_init__(self) -> None:
        if self.dim_att is None:
            object.__setattr__(self, "dim_att", self.n_embd)
        if self.dim_ffn is None:
            object.__setattr__(self, "dim_ffn", int(self.n_embd * 3.5) // 32 * 32)
        for name in ("n_layer", "n_embd", "vocab_size", "dim_att", "dim_ffn", "head_size",
                     "d_mix_lora", "d_decay_lora", "wkv_chunk_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"RWKV6Config.{name} must be a positive integer, got {value!r}")
        if self.dim_att % self.head_size != 0:
            raise ValueError(
                f"RWKV6Config: dim_att={self.dim_att} is not a multiple of head_size={self.head_size}")
        if self.wkv_backend not in WKV_BACKENDS:
            raise ValueError(
                f"RWKV6Config.wkv_backend must be one of {WKV_BACKENDS}, got {self.wkv_backend!r}")
        if not isinstance(self.grad_cp, bool):
            raise ValueError(f"RWKV6Config.grad_cp must be True or False, got {self.grad_cp!r}")

    @property
    def n_head(self) -> int:
        return self.dim_att // self.head_size

    def replace(self, **changes) -> "RWKV6Config":
        """A copy with some fields changed (the config itself is immutable)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def shape_signature(self) -> dict:
        """The architecture fields only: what a checkpoint's shapes determine."""
        keys = ("n_layer", "n_embd", "vocab_size", "dim_att", "dim_ffn", "head_size",
                "d_mix_lora", "d_decay_lora")
        return {k: getattr(self, k) for k in keys}

    @classmethod
    def from_dict(cls, data: Mapping, source: str = "config") -> "RWKV6Config":
        return dataclass_from_dict(cls, data, source)

    @classmethod
    def from_json(cls, path: str | Path) -> "RWKV6Config":
        """A config JSON file; one with RWKV7's fields (d_decay_lora, ...) gives an RWKV7Config."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"model config {path} does not exist") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"model config {path} is not valid JSON: {e}") from None
        if not isinstance(data, dict):
            raise ValueError(f"model config {path} must hold a JSON object, got {type(data).__name__}")
        if "d_decay_lora" in data and "d_aaa_lora" in data:
            from .config7 import RWKV7Config
            return RWKV7Config.from_dict(data, source=str(path))
        return cls.from_dict(data, source=str(path))

    @classmethod
    def preset(cls, name: str, **overrides) -> "RWKV6Config":
        """A shipped preset: 'tiny', '0.1b', '0.4b', '1.6b', '3b', '7b' or '14b'."""
        path = MODEL_PRESETS / f"rwkv6-{name}.json"
        if not path.exists():
            raise ValueError(f"unknown model preset {name!r}; available: {preset_names()}")
        return cls.from_json(path).replace(**overrides)

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint",
                        **runtime) -> "RWKV6Config":
        """Infer every size from the shapes of an RWKV6 state dict (RWKV-LM key names)."""
        required = ("emb.weight", "blocks.0.att.key.weight", "blocks.0.ffn.key.weight",
                    "blocks.0.att.time_faaaa", "blocks.0.att.time_maa_w1", "blocks.0.att.time_decay_w1")
        missing = [k for k in required if k not in state_dict]
        if missing:
            hint = ""
            if "blocks.0.att.time_mix_k" in state_dict or "blocks.0.att.time_first" in state_dict:
                hint = " (this looks like an RWKV4/5 checkpoint; only RWKV6 'x060' is supported)"
            elif "blocks.0.att.x_r" in state_dict or "blocks.0.att.w0" in state_dict:
                hint = " (this looks like an RWKV7 checkpoint; only RWKV6 'x060' is supported)"
            raise ValueError(f"{source}: not an RWKV6 checkpoint, missing key(s) {missing}{hint}")
        layer_ids = {int(k.split(".")[1]) for k in state_dict if k.startswith("blocks.")}
        vocab_size, n_embd = state_dict["emb.weight"].shape
        n_head, head_size = state_dict["blocks.0.att.time_faaaa"].shape
        mix = state_dict["blocks.0.att.time_maa_w1"].shape[1]
        if mix % 5 != 0:
            raise ValueError(f"{source}: blocks.0.att.time_maa_w1 has shape "
                             f"{tuple(state_dict['blocks.0.att.time_maa_w1'].shape)}; "
                             f"its second dimension must be 5 * d_mix_lora")
        return cls(
            n_layer=max(layer_ids) + 1,
            n_embd=int(n_embd),
            vocab_size=int(vocab_size),
            dim_att=int(state_dict["blocks.0.att.key.weight"].shape[0]),
            dim_ffn=int(state_dict["blocks.0.ffn.key.weight"].shape[0]),
            head_size=int(head_size),
            d_mix_lora=int(mix // 5),
            d_decay_lora=int(state_dict["blocks.0.att.time_decay_w1"].shape[1]),
            **runtime,
        )


def preset_names(family: str = "x060") -> list[str]:
    """The shipped presets, smallest first: tiny, 0.1b, 0.4b, ..., then any others by name. RWKV6's are
    bare names ('3b'); family "x070" lists RWKV7's, which are named with their prefix ('rwkv7-1.5b')."""
    if family == "x070":
        return ["rwkv7-" + n for n in _sorted_presets("rwkv7-")]
    return _sorted_presets("rwkv6-")


def _sorted_presets(prefix: str) -> list[str]:
    def size(name: str) -> tuple:
        try:
            return (0, float(name.removesuffix("b")))
        except ValueError:
            return (0, 0.0) if name == "tiny" else (1, name)
    return sorted((p.stem.removeprefix(prefix) for p in MODEL_PRESETS.glob(f"{prefix}*.json")), key=size)


def resolve_config(spec: str, **runtime):
    """A preset name ('3b' for RWKV6, 'rwkv7-1.5b' for RWKV7) or a path to a config JSON file (an RWKV7
    one names d_decay_lora): an RWKV6Config or an RWKV7Config."""
    from .config7 import RWKV7Config
    if spec.endswith(".json") or "/" in spec:
        config = RWKV6Config.from_json(spec)                      # reads and checks the file's JSON
        return config.replace(**runtime)
    if spec.startswith("rwkv7-"):
        return RWKV7Config.preset(spec, **runtime)
    return RWKV6Config.preset(spec.removeprefix("rwkv6-"), **runtime)
