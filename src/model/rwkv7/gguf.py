"""RWKV-7 as llama.cpp's GGUF "rwkv7" holds it (what llama.cpp's own convert_hf_to_gguf.py writes from the
fla-hub layout): the metadata, and each GGUF tensor with the RWKV-LM tensors it is made of.

    entries(config) -> [(gguf name, source keys, build(tensors) -> tensor, kind)]
    metadata(config) -> {gguf writer method: value}

kind: "f32" (kept in fp32: vectors, norms, the decay's low-rank map w1 / w2, the fused lerp), "lora" (the
other low-rank maps a1 a2 v1 v2 g1 g2: --dtype, but f16 for q8_0, as llama-quantize leaves them) or
"main" (--dtype: the embedding, head and projections). Layouts (numpy shapes; llama.cpp reads them
reversed): X1 (C, D) and X2 (D, C) transposed to (D, C) and (C, D); X0, k_k, k_a and ffn.x_k squeezed to
(C,); r_k (H, N) flattened; x_r, x_w, x_k, x_v, x_a, x_g stacked in that order into time_mix_lerp_fused
(6, 1, 1, C). Layer 0 has no value residual: llama.cpp still expects its v0 / v1 / v2, shaped as a0 /
a1 / a2, and never reads them, so they are written as copies of a0 / a1 / a2.
"""

from __future__ import annotations

from ..gguf_tensors import first, stacked, transposed, vector

ARCH = "rwkv7"
CONTEXT_LENGTH = 1048576


def entries(config) -> list[tuple]:
    out = [("token_embd.weight", ("emb.weight",), first, "main"),
           ("token_embd_norm.weight", ("blocks.0.ln0.weight",), first, "f32"),
           ("token_embd_norm.bias", ("blocks.0.ln0.bias",), first, "f32")]
    for i in range(config.n_layer):
        b, g = f"blocks.{i}", f"blk.{i}"
        v = "a" if i == 0 else "v"                      # layer 0: v0 / v1 / v2 are copies of a0 / a1 / a2
        out += [(f"{g}.attn_norm.weight", (f"{b}.ln1.weight",), first, "f32"),
                (f"{g}.attn_norm.bias", (f"{b}.ln1.bias",), first, "f32"),
                (f"{g}.attn_norm_2.weight", (f"{b}.ln2.weight",), first, "f32"),
                (f"{g}.attn_norm_2.bias", (f"{b}.ln2.bias",), first, "f32"),
                (f"{g}.time_mix_lerp_fused.weight", tuple(f"{b}.att.x_{n}" for n in "rwkvag"), stacked, "f32"),
                (f"{g}.time_mix_w0.weight", (f"{b}.att.w0",), vector, "f32"),
                (f"{g}.time_mix_w1.weight", (f"{b}.att.w1",), transposed, "f32"),
                (f"{g}.time_mix_w2.weight", (f"{b}.att.w2",), transposed, "f32"),
                (f"{g}.time_mix_a0.weight", (f"{b}.att.a0",), vector, "f32"),
                (f"{g}.time_mix_a1.weight", (f"{b}.att.a1",), transposed, "lora"),
                (f"{g}.time_mix_a2.weight", (f"{b}.att.a2",), transposed, "lora"),
                (f"{g}.time_mix_v0.weight", (f"{b}.att.{v}0",), vector, "f32"),
                (f"{g}.time_mix_v1.weight", (f"{b}.att.{v}1",), transposed, "lora"),
                (f"{g}.time_mix_v2.weight", (f"{b}.att.{v}2",), transposed, "lora"),
                (f"{g}.time_mix_g1.weight", (f"{b}.att.g1",), transposed, "lora"),
                (f"{g}.time_mix_g2.weight", (f"{b}.att.g2",), transposed, "lora"),
                (f"{g}.time_mix_k_k.weight", (f"{b}.att.k_k",), vector, "f32"),
                (f"{g}.time_mix_k_a.weight", (f"{b}.att.k_a",), vector, "f32"),
                (f"{g}.time_mix_r_k.weight", (f"{b}.att.r_k",), vector, "f32")]
        out += [(f"{g}.time_mix_{n}.weight", (f"{b}.att.{n}.weight",), first, "main")
                for n in ("key", "value", "receptance")]
        out += [(f"{g}.time_mix_ln.weight", (f"{b}.att.ln_x.weight",), first, "f32"),
                (f"{g}.time_mix_ln.bias", (f"{b}.att.ln_x.bias",), first, "f32"),
                (f"{g}.time_mix_output.weight", (f"{b}.att.output.weight",), first, "main"),
                (f"{g}.channel_mix_lerp_k.weight", (f"{b}.ffn.x_k",), vector, "f32"),
                (f"{g}.channel_mix_key.weight", (f"{b}.ffn.key.weight",), first, "main"),
                (f"{g}.channel_mix_value.weight", (f"{b}.ffn.value.weight",), first, "main")]
    out += [("output_norm.weight", ("ln_out.weight",), first, "f32"),
            ("output_norm.bias", ("ln_out.bias",), first, "f32"),
            ("output.weight", ("head.weight",), first, "main")]
    return out


def metadata(config) -> dict:
    return {"add_context_length": CONTEXT_LENGTH, "add_embedding_length": config.n_embd,
            "add_block_count": config.n_layer, "add_layer_norm_eps": 1e-5, "add_wkv_head_size": config.head_size,
            "add_decay_lora_rank": config.d_decay_lora, "add_iclr_lora_rank": config.d_aaa_lora,
            "add_value_residual_mix_lora_rank": config.d_mv_lora, "add_gate_lora_rank": config.d_gate_lora,
            "add_feed_forward_length": config.dim_ffn, "add_head_count": 0}
