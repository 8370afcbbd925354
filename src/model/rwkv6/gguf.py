"""RWKV-6 as llama.cpp's GGUF "rwkv6" holds it (what llama.cpp's own convert_hf_to_gguf.py writes): the
metadata, and each GGUF tensor with the RWKV-LM tensors it is made of.

    entries(config) -> [(gguf name, source keys, build(tensors) -> tensor, kind)]
    metadata(config) -> {gguf writer method: value}

kind: "f32" (kept in fp32 whatever --dtype: vectors, norms, the token-shift and decay low-rank maps,
the fused lerp, the bonus) or "main" (follows --dtype: the embedding, head and the big projections).
Layouts (numpy shapes; llama.cpp reads them reversed): time_maa_w1 (C, 5 Dm) -> time_mix_w1 (5 Dm, C);
time_maa_w2 (5, Dm, C) -> time_mix_w2 (5, C, Dm); time_decay_w1 / w2 transposed; the (1, 1, C) vectors
squeezed; time_maa_{w,k,v,r,g} stacked in that order into time_mix_lerp_fused (5, 1, 1, C);
time_faaaa (H, N) as it is. No rescaling is written (rescale_every_n_layers 0, weights as trained).
"""

from __future__ import annotations

from ..gguf_tensors import first, stacked, transposed, vector

ARCH = "rwkv6"
CONTEXT_LENGTH = 1048576             # RWKV has no context limit; llama.cpp's converter writes this


def entries(config) -> list[tuple]:
    if config.dim_att != config.n_embd:
        raise ValueError(f"--format gguf: llama.cpp's rwkv6 needs the attention width equal to n_embd, this model "
                         f"has dim_att {config.dim_att} and n_embd {config.n_embd}")
    out = [("token_embd.weight", ("emb.weight",), first, "main"),
           ("token_embd_norm.weight", ("blocks.0.ln0.weight",), first, "f32"),
           ("token_embd_norm.bias", ("blocks.0.ln0.bias",), first, "f32")]
    for i in range(config.n_layer):
        b, g = f"blocks.{i}", f"blk.{i}"
        out += [(f"{g}.attn_norm.weight", (f"{b}.ln1.weight",), first, "f32"),
                (f"{g}.attn_norm.bias", (f"{b}.ln1.bias",), first, "f32"),
                (f"{g}.attn_norm_2.weight", (f"{b}.ln2.weight",), first, "f32"),
                (f"{g}.attn_norm_2.bias", (f"{b}.ln2.bias",), first, "f32"),
                (f"{g}.time_mix_lerp_x.weight", (f"{b}.att.time_maa_x",), vector, "f32"),
                (f"{g}.time_mix_lerp_fused.weight", tuple(f"{b}.att.time_maa_{n}" for n in "wkvrg"),
                 stacked, "f32"),
                (f"{g}.time_mix_w1.weight", (f"{b}.att.time_maa_w1",), transposed, "f32"),
                (f"{g}.time_mix_w2.weight", (f"{b}.att.time_maa_w2",), lambda t: t[0].permute(0, 2, 1), "f32"),
                (f"{g}.time_mix_decay.weight", (f"{b}.att.time_decay",), vector, "f32"),
                (f"{g}.time_mix_decay_w1.weight", (f"{b}.att.time_decay_w1",), transposed, "f32"),
                (f"{g}.time_mix_decay_w2.weight", (f"{b}.att.time_decay_w2",), transposed, "f32"),
                (f"{g}.time_mix_first.weight", (f"{b}.att.time_faaaa",), first, "f32")]
        out += [(f"{g}.time_mix_{n}.weight", (f"{b}.att.{n}.weight",), first, "main")
                for n in ("key", "value", "receptance", "gate")]
        out += [(f"{g}.time_mix_ln.weight", (f"{b}.att.ln_x.weight",), first, "f32"),
                (f"{g}.time_mix_ln.bias", (f"{b}.att.ln_x.bias",), first, "f32"),
                (f"{g}.time_mix_output.weight", (f"{b}.att.output.weight",), first, "main"),
                (f"{g}.channel_mix_lerp_k.weight", (f"{b}.ffn.time_maa_k",), vector, "f32"),
                (f"{g}.channel_mix_lerp_r.weight", (f"{b}.ffn.time_maa_r",), vector, "f32")]
        out += [(f"{g}.channel_mix_{n}.weight", (f"{b}.ffn.{n}.weight",), first, "main")
                for n in ("key", "receptance", "value")]
    out += [("output_norm.weight", ("ln_out.weight",), first, "f32"),
            ("output_norm.bias", ("ln_out.bias",), first, "f32"),
            ("output.weight", ("head.weight",), first, "main")]
    return out


def metadata(config) -> dict:
    return {"add_context_length": CONTEXT_LENGTH, "add_embedding_length": config.n_embd,
            "add_block_count": config.n_layer, "add_layer_norm_eps": 1e-5, "add_rescale_every_n_layers": 0,
            "add_wkv_head_size": config.head_size, "add_time_mix_extra_dim": config.d_mix_lora,
            "add_time_decay_extra_dim": config.d_decay_lora, "add_feed_forward_length": config.dim_ffn,
            "add_head_count": 0}
