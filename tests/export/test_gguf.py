"""export.py --format gguf: llama.cpp's GGUF for RWKV-6 and RWKV-7. The file's structure, read back with the
gguf package, and llama.cpp itself, through llama-cpp-python, running it to our logits and our greedy text
(llama-cpp-python is built from source into the environment the first time, about 10 minutes)."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from src.export.cli import main
from src.model import families, get_family, load_model

pytestmark = pytest.mark.slow              # each export parses the 65,536-token vocabulary; llama.cpp builds once
gguf = pytest.importorskip("gguf")          # in requirements.txt

FAMILIES = [f.name for f in families()]
LLAMA_CPP_PYTHON = "llama-cpp-python==0.3.36"




def read(path):
    reader = gguf.GGUFReader(path)
    fields = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    tensors = {t.name: t for t in reader.tensors}
    return fields, tensors


def values(tensor) -> np.ndarray:
    """A tensor's values in numpy's order (the reader gives ggml's reversed shape)."""
    return gguf.quants.dequantize(tensor.data, tensor.tensor_type).reshape(list(reversed(tensor.shape)))


@pytest.mark.parametrize("family", FAMILIES)
def test_metadata_tokenizer_and_layouts(tiny_bases, family, tmp_path):
    out = tmp_path / "m.gguf"
    assert main(["--model", str(tiny_bases[family]), "--format", "gguf", "--out", str(out)]) == 0
    fields, tensors = read(out)
    sd = torch.load(tiny_bases[family], weights_only=True)
    config = load_model(tiny_bases[family]).config
    arch = get_family(family).gguf_layout.ARCH
    assert fields["general.architecture"] == arch and fields[f"{arch}.block_count"] == config.n_layer
    assert fields[f"{arch}.wkv.head_size"] == config.head_size and fields[f"{arch}.embedding_length"] == config.n_embd
    assert fields["tokenizer.ggml.model"] == "rwkv" and len(fields["tokenizer.ggml.tokens"]) == config.vocab_size
    assert fields["tokenizer.ggml.tokens"][261] == "\\n\\n" and fields["tokenizer.ggml.eot_token_id"] == 261
    assert fields["tokenizer.ggml.tokens"][0] == "<s>" and fields["tokenizer.ggml.token_type"][0] == 3
    assert all(t.tensor_type == gguf.GGMLQuantizationType.F32 for t in tensors.values())
    emb = values(tensors["token_embd.weight"])
    assert np.array_equal(emb, sd["emb.weight"].numpy())
    fused = values(tensors["blk.1.time_mix_lerp_fused.weight"])
    if family == "x060":
        assert fields["rwkv6.time_mix_extra_dim"] == config.d_mix_lora
        order = [sd[f"blocks.1.att.time_maa_{n}"].reshape(-1).numpy() for n in "wkvrg"]
        assert np.array_equal(values(tensors["blk.1.time_mix_w2.weight"]),
                              sd["blocks.1.att.time_maa_w2"].permute(0, 2, 1).numpy())
    else:
        assert fields["rwkv7.attention.decay_lora_rank"] == config.d_decay_lora
        order = [sd[f"blocks.1.att.x_{n}"].reshape(-1).numpy() for n in "rwkvag"]
        assert np.array_equal(values(tensors["blk.1.time_mix_w1.weight"]), sd["blocks.1.att.w1"].t().numpy())
        assert np.array_equal(values(tensors["blk.0.time_mix_v1.weight"]), sd["blocks.0.att.a1"].t().numpy())
    assert np.array_equal(fused.reshape(len(order), -1), np.stack(order))


@pytest.mark.parametrize("family", FAMILIES)
def test_q8_0_where_llama_cpp_quantises_and_f32_where_it_does_not(tiny_bases, family, tmp_path):
    out = tmp_path / "m.gguf"
    assert main(["--model", str(tiny_bases[family]), "--format", "gguf", "--dtype", "q8_0", "--out", str(out)]) == 0
    fields, tensors = read(out)
    T = gguf.GGMLQuantizationType
    assert fields["general.file_type"] == int(gguf.LlamaFileType.MOSTLY_Q8_0)
    assert tensors["token_embd.weight"].tensor_type == T.Q8_0 and tensors["output.weight"].tensor_type == T.Q8_0
    assert tensors["blk.0.time_mix_key.weight"].tensor_type == T.Q8_0
    assert tensors["blk.0.time_mix_lerp_fused.weight"].tensor_type == T.F32
    assert tensors["blk.0.time_mix_w1.weight"].tensor_type == T.F32
    if family == "x070":
        assert tensors["blk.1.time_mix_a1.weight"].tensor_type == T.F16
    sd = torch.load(tiny_bases[family], weights_only=True)
    key = values(tensors["blk.0.time_mix_key.weight"])
    want = sd["blocks.0.att.key.weight"].numpy()
    assert np.abs(key - want).max() < np.abs(want).max() / 100                    # q8_0's rounding


def llama_cpp():
    """llama_cpp, built into this environment the first time (slow tier only)."""
    try:
        import llama_cpp
        return llama_cpp
    except ImportError:
        env = {**os.environ, "CMAKE_ARGS": "-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF "
                                          "-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAVA_BUILD=OFF"}
        done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", LLAMA_CPP_PYTHON],
                              capture_output=True, text=True, env=env)
        if done.returncode != 0:
            pytest.fail(f"installing {LLAMA_CPP_PYTHON} failed: {done.stderr[-2000:]}")
        import llama_cpp
        return llama_cpp


@pytest.mark.parametrize("family", FAMILIES)
def test_llama_cpp_runs_it_to_our_logits_and_our_greedy_text(tiny_bases, family, tmp_path):
    from src.infer import Sampler, generate_tokens
    lib = llama_cpp()
    out = tmp_path / "m.gguf"
    assert main(["--model", str(tiny_bases[family]), "--format", "gguf", "--out", str(out)]) == 0
    llm = lib.Llama(model_path=str(out), logits_all=True, n_ctx=128, n_threads=2, verbose=False)
    prompt = torch.randint(0, 65536, (24,), generator=torch.Generator().manual_seed(3)).tolist()
    llm.reset()
    llm.eval(prompt)
    theirs = torch.tensor(np.array(llm.scores[:len(prompt)]))
    ours = load_model(tiny_bases[family])
    with torch.no_grad():
        want = ours(torch.tensor([prompt]))[0]
    assert ((theirs - want).abs().max() / want.abs().max()).item() < 1e-4     # llama.cpp's fp32 (measured ~1e-6)
    greedy = []
    for _ in range(32):
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        greedy.append(token)
        llm.eval([token])
    mine = list(generate_tokens(ours, prompt, Sampler(temperature=0.0), 32, stop_token=None))
    assert greedy == mine
