"""RWKV6Config: the shapes of an RWKV-6 ("x060", Finch) model, plus how to run it (on config.py's RWKVConfig)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Mapping

import torch

from ...wkv6 import BACKENDS as WKV6_BACKENDS
from ..config import RWKVConfig


@dataclass(frozen=True)
class RWKV6Config(RWKVConfig):
    """Shapes of an RWKV-6 ("x060") model, plus how to run it.

    n_layer, n_embd, vocab_size: the usual sizes.
    dim_att: width of r/k/v/g (C, n_embd when None); heads = dim_att // head_size.
    dim_ffn: channel-mix hidden width (RWKV-LM default: int(3.5 * n_embd) // 32 * 32).
    d_mix_lora: width of the token-shift mixing LoRA (`time_maa_w1` is (C, 5 * d_mix_lora)).
    d_decay_lora: width of the data-dependent decay LoRA (`time_decay_w1` is (C, d_decay_lora)).
    grad_cp: recompute each block in backward (non-reentrant activation checkpointing).
    wkv_backend: "auto" (cuda kernel for bf16 CUDA tensors, else naive for one token, chunked for more),
        "naive", "chunked", "cuda" or "cuda_emulated" (src/wkv6).
    wkv_chunk_size: chunk length of the chunked backend.
    """

    family: ClassVar[str] = "x060"
    shape_fields: ClassVar[tuple[str, ...]] = ("n_layer", "n_embd", "vocab_size", "dim_att", "dim_ffn", "head_size",
                                               "d_mix_lora", "d_decay_lora")
    backends: ClassVar[tuple[str, ...]] = WKV6_BACKENDS

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

    def fill_defaults(self) -> dict:
        C = self.n_embd if isinstance(self.n_embd, int) else 0
        return {"dim_att": self.n_embd, "dim_ffn": int(C * 3.5) // 32 * 32}

    @classmethod
    def size_sources(cls) -> dict[str, str]:
        return {"emb.weight": "vocab_size, n_embd", "blocks.0.att.key.weight": "dim_att",
                "blocks.0.ffn.key.weight": "dim_ffn", "blocks.0.att.time_faaaa": "heads, head_size",
                "blocks.0.att.time_maa_w1": "d_mix_lora", "blocks.0.att.time_decay_w1": "d_decay_lora"}

    @classmethod
    def sizes_from(cls, state_dict: Mapping[str, torch.Tensor], source: str) -> dict:
        vocab_size, n_embd = state_dict["emb.weight"].shape
        n_head, head_size = state_dict["blocks.0.att.time_faaaa"].shape
        mix = state_dict["blocks.0.att.time_maa_w1"].shape[1]
        if mix % 5 != 0:
            raise ValueError(f"{source}: blocks.0.att.time_maa_w1 has shape "
                             f"{tuple(state_dict['blocks.0.att.time_maa_w1'].shape)}; "
                             f"its second dimension must be 5 * d_mix_lora")
        return dict(n_embd=int(n_embd), vocab_size=int(vocab_size),
                    dim_att=int(state_dict["blocks.0.att.key.weight"].shape[0]),
                    dim_ffn=int(state_dict["blocks.0.ffn.key.weight"].shape[0]), head_size=int(head_size),
                    d_mix_lora=int(mix // 5), d_decay_lora=int(state_dict["blocks.0.att.time_decay_w1"].shape[1]))
