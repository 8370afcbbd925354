"""RWKV-7 in Hugging Face's fla-hub layout (fla's RWKV7ForCausalLM; also read by llama.cpp's HF converter
and the rwkv7-hf package): the config, and each RWKV-LM tensor's name and layout there.

    hf_name("blocks.3.att.w1")  -> "model.layers.3.attn.w_lora.lora.0.weight"
    hf_tensor(key, tensor)         the tensor as that name holds it

The mapping (fla's own converter applies the same rules):
    emb.weight -> model.embeddings.weight; ln_out -> model.norm; head.weight -> lm_head.weight
    blocks.{i}.ln0 / ln1 / ln2 -> model.layers.{i}.pre_norm / attn_norm / ffn_norm
    blocks.{i}.att.* -> model.layers.{i}.attn.*: receptance / key / value / output -> r_proj / k_proj /
        v_proj / o_proj, ln_x -> g_norm (a GroupNorm of n_head groups); the low-rank maps X in w, a, v, g:
        X1 (C, D) -> X_lora.lora.0.weight (D, C), X2 (D, C) -> X_lora.lora.2.weight (C, D) (nn.Linear
        layouts, so transposed), X0 (1, 1, C) -> X_lora.lora.2.bias (C,); k_k and k_a (1, 1, C) -> (C,);
        x_r .. x_g (1, 1, C) and r_k (H, N) as they are
    blocks.{i}.ffn.* -> model.layers.{i}.ffn.*, x_k (1, 1, C) -> (C,)
    blocks.0.att.v0 / v1 / v2: dropped (layer 0 has no value residual to mix)
"""

from __future__ import annotations

import re

import torch

MODEL_TYPE = "rwkv7"
ARCHITECTURE = "RWKV7ForCausalLM"
TOP = {"emb.weight": "model.embeddings.weight", "ln_out.weight": "model.norm.weight",
       "ln_out.bias": "model.norm.bias", "head.weight": "lm_head.weight"}
PARTS = {"att": "attn", "ffn": "ffn", "ln0": "pre_norm", "ln1": "attn_norm", "ln2": "ffn_norm"}
PROJECTIONS = {"receptance": "r_proj", "key": "k_proj", "value": "v_proj", "output": "o_proj", "ln_x": "g_norm"}
LOW_RANK = re.compile(r"^([wavg])([012])$")
LOW_RANK_NAMES = {"0": "lora.2.bias", "1": "lora.0.weight", "2": "lora.2.weight"}
TO_VECTOR = (".att.k_k", ".att.k_a", ".ffn.x_k")    # (1, 1, C) in RWKV-LM, (C,) in fla (besides the X0 biases)
DROPPED = ("blocks.0.att.v0", "blocks.0.att.v1", "blocks.0.att.v2")


def hf_name(key: str) -> str | None:
    """The fla-hub name of an RWKV-LM key (None: not in the layout)."""
    if key in DROPPED:
        return None
    if key in TOP:
        return TOP[key]
    parts = key.split(".")
    if len(parts) < 4 or parts[0] != "blocks" or parts[2] not in PARTS:
        raise ValueError(f"--format hf: {key} is not an RWKV-7 tensor this layout knows")
    block, part, rest = parts[1], PARTS[parts[2]], parts[3:]
    low_rank = LOW_RANK.match(rest[0]) if part == "attn" and len(rest) == 1 else None
    if low_rank:
        rest = [f"{low_rank.group(1)}_lora", LOW_RANK_NAMES[low_rank.group(2)]]
    elif part == "attn" and rest[0] in PROJECTIONS:
        rest = [PROJECTIONS[rest[0]], *rest[1:]]
    return ".".join(["model", "layers", block, part, *rest])


def hf_tensor(key: str, tensor: torch.Tensor) -> torch.Tensor:
    """The tensor of `key` laid out as hf_name(key) holds it."""
    leaf = key.rsplit(".", 1)[-1]
    low_rank = LOW_RANK.match(leaf) if ".att." in key else None
    if low_rank and low_rank.group(2) in "12":
        return tensor.t().contiguous()
    if (low_rank and low_rank.group(2) == "0") or key.endswith(TO_VECTOR):
        return tensor.reshape(-1)
    return tensor


def hf_shape(key: str, shape: tuple) -> tuple:
    return tuple(hf_tensor(key, torch.empty(shape, device="meta")).shape)


def hf_config(config, dtype: str) -> dict:
    """config.json: fla's RWKV7Config fields, every size from the model's config."""
    C = config.n_embd
    return {"model_type": MODEL_TYPE, "architectures": [ARCHITECTURE], "vocab_size": config.vocab_size,
            "hidden_size": C, "num_hidden_layers": config.n_layer, "head_dim": config.head_size,
            "num_heads": config.dim_att // config.head_size, "hidden_ratio": config.dim_ffn / C,
            "intermediate_size": config.dim_ffn, "decay_low_rank_dim": config.d_decay_lora,
            "gate_low_rank_dim": config.d_gate_lora, "a_low_rank_dim": config.d_aaa_lora,
            "v_low_rank_dim": config.d_mv_lora, "value_dim": [config.dim_att] * config.n_layer,
            "hidden_act": "sqrelu", "norm_first": True, "norm_bias": True, "norm_eps": 1e-5,
            "attn_mode": "chunk", "fuse_norm": False, "tie_word_embeddings": False, "bos_token_id": 1,
            "eos_token_id": 0, "pad_token_id": 0, "torch_dtype": dtype, "use_cache": True}
