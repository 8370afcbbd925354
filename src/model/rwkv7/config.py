"""RWKV7Config: the shapes of an RWKV-7 ("x070", Goose) model, plus how to run it (on config.py's RWKVConfig).

Every low-rank width is read from the checkpoint when loading one (the released models' widths
changed during 2025); only a random initialisation falls back on RWKV-LM's rule for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Mapping

import torch

from ...wkv7 import BACKENDS as WKV7_BACKENDS
from ..config import RWKVConfig


def lora_width(n_embd: int, factor: float) -> int:
    """RWKV-LM's rule for a new model: max(32, round(factor * sqrt(C) / 32) * 32)."""
    return max(32, int(round(factor * n_embd ** 0.5 / 32)) * 32)


@dataclass(frozen=True)
class RWKV7Config(RWKVConfig):
    """Shapes of an RWKV-7 ("x070", Goose) model, plus how to run it.

    n_layer, n_embd, vocab_size: the usual sizes; head_size 64 (heads = n_embd // 64).
    dim_ffn: channel-mix hidden width (4 * n_embd).
    d_decay_lora, d_aaa_lora, d_mv_lora, d_gate_lora: widths of the low-rank maps of the decay
        (w1: C x d), the in-context learning rate (a1), the value residual (v1) and the gate (g1);
        None: RWKV-LM's rule from n_embd (2.5, 2.5, 1.7 and 5 x sqrt(C), multiples of 32).
    grad_cp: recompute each block in backward (non-reentrant activation checkpointing).
    wkv_backend: the WKV7 implementation: "auto", "naive", "chunked", "cuda", "cuda_emulated" (src/wkv7).
    wkv_chunk_size: chunk length of the chunked backend.
    """

    family: ClassVar[str] = "x070"
    shape_fields: ClassVar[tuple[str, ...]] = ("n_layer", "n_embd", "vocab_size", "head_size", "dim_ffn",
                                               "d_decay_lora", "d_aaa_lora", "d_mv_lora", "d_gate_lora")
    backends: ClassVar[tuple[str, ...]] = WKV7_BACKENDS

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
    wkv_chunk_size: int = 16

    def fill_defaults(self) -> dict:
        C = self.n_embd
        if not isinstance(C, int) or isinstance(C, bool) or C <= 0:
            return {}                                   # the check names n_embd
        return {"dim_ffn": 4 * C, "d_decay_lora": lora_width(C, 2.5), "d_aaa_lora": lora_width(C, 2.5),
                "d_mv_lora": lora_width(C, 1.7), "d_gate_lora": lora_width(C, 5.0)}

    @property
    def dim_att(self) -> int:
        return self.n_embd

    @classmethod
    def size_sources(cls) -> dict[str, str]:
        return {"emb.weight": "vocab_size, n_embd", "blocks.0.att.r_k": "heads, head_size",
                "blocks.0.att.w1": "d_decay_lora", "blocks.0.att.a1": "d_aaa_lora", "blocks.0.att.v1": "d_mv_lora",
                "blocks.0.att.g1": "d_gate_lora", "blocks.0.ffn.key.weight": "dim_ffn"}

    @classmethod
    def sizes_from(cls, state_dict: Mapping[str, torch.Tensor], source: str) -> dict:
        vocab_size, n_embd = state_dict["emb.weight"].shape
        n_head, head_size = state_dict["blocks.0.att.r_k"].shape
        return dict(n_embd=int(n_embd), vocab_size=int(vocab_size), head_size=int(head_size),
                    dim_ffn=int(state_dict["blocks.0.ffn.key.weight"].shape[0]),
                    d_decay_lora=int(state_dict["blocks.0.att.w1"].shape[1]),
                    d_aaa_lora=int(state_dict["blocks.0.att.a1"].shape[1]),
                    d_mv_lora=int(state_dict["blocks.0.att.v1"].shape[1]),
                    d_gate_lora=int(state_dict["blocks.0.att.g1"].shape[1]))
