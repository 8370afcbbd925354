"""export.py --format hf: RWKV-7 in fla-hub's layout, checked by an implementation that is not ours: the
rwkv7-hf package's pure-PyTorch RWKV7ForCausalLM runs the directory to our logits, and its own converter
makes the same tensors from the same .pth."""

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from src.export.cli import main
from src.model import get_family, init_model, load_model, save_checkpoint
from src.peft import PeftConfig, apply_peft, read_adapter, save_adapter
from src.peft.merge import merge_into_base
from tests.peft.helpers import randomize_adapters

TINY7 = get_family("x070").config_class.preset("tiny")


@pytest.fixture(scope="module")
def base7(tmp_path_factory):
    path = tmp_path_factory.mktemp("v7") / "base.pth"
    save_checkpoint(init_model(TINY7, seed=5, nonzero=True), path, dtype=torch.float32)
    return path


def test_the_directory(base7, tmp_path):
    out = tmp_path / "hf"
    assert main(["--model", str(base7), "--format", "hf", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["added_tokens.json", "config.json", "model.safetensors",
                                                      "rwkv_vocab_v20230424.txt", "special_tokens_map.json",
                                                      "tokenizer_config.json"]
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "rwkv7" and config["architectures"] == ["RWKV7ForCausalLM"]
    assert (config["hidden_size"], config["num_hidden_layers"], config["head_dim"], config["intermediate_size"]) == \
        (TINY7.n_embd, TINY7.n_layer, TINY7.head_size, TINY7.dim_ffn)
    with safe_open(out / "model.safetensors", "pt") as f:
        assert f.metadata() == {"format": "pt"}
        names = set(f.keys())
    assert "model.layers.0.attn.v_lora.lora.0.weight" not in names             # layer 0 has no value residual
    assert "model.layers.1.attn.v_lora.lora.0.weight" in names and "lm_head.weight" in names
    assert len(names) == len(torch.load(base7, weights_only=True)) - 3


def test_bf16_keeps_the_decay_bias_in_fp32(base7, tmp_path):
    assert main(["--model", str(base7), "--format", "hf", "--dtype", "bf16", "--out", str(tmp_path / "hf")]) == 0
    tensors = load_file(tmp_path / "hf" / "model.safetensors")
    assert tensors["model.layers.0.attn.w_lora.lora.2.bias"].dtype == torch.float32
    assert tensors["model.layers.0.attn.k_proj.weight"].dtype == torch.bfloat16


def test_rwkv6_and_bad_outputs_are_one_line(tiny_fp32_checkpoint, base7, tmp_path, capsys):
    for argv, message in (
            (["--model", str(tiny_fp32_checkpoint), "--out", str(tmp_path / "a")], "--format hf: RWKV-6 models have "
                                                                                     "no Hugging Face layout here"),
            (["--model", str(base7), "--out", str(base7.parent)], "holds one of this command's inputs"),
            (["--model", str(base7), "--out", str(base7.parent / "x"), "--dtype", "q8_0"], "--format hf holds f32, "
                                                                                              "f16, bf16 only")):
        assert main([*argv, "--format", "hf"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    (tmp_path / "exists").mkdir()
    assert main(["--model", str(base7), "--format", "hf", "--out", str(tmp_path / "exists")]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert main(["--model", str(base7), "--format", "hf", "--out", str(tmp_path / "exists"), "--overwrite"]) == 0
    assert (tmp_path / "exists" / "model.safetensors").is_file()


@pytest.mark.slow
def test_rwkv7_hf_runs_it_to_our_logits_and_its_converter_agrees(base7, tmp_path):
    from rwkv7_hf import RWKV7ForCausalLM
    from rwkv7_hf.converter import convert, parse_args
    out = tmp_path / "hf"
    assert main(["--model", str(base7), "--format", "hf", "--out", str(out)]) == 0
    theirs = RWKV7ForCausalLM.from_pretrained(out, dtype=torch.float32, use_kernels=False).eval()
    ours = load_model(base7)
    tokens = torch.randint(0, TINY7.vocab_size, (2, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = theirs(tokens).logits, ours(tokens)
    assert ((a - b).abs().max() / b.abs().max()).item() < 1e-4
    convert(parse_args(["--input", str(base7), "--output", str(tmp_path / "converted"), "--precision", "fp32"]))
    converted, mine = load_file(tmp_path / "converted" / "model.safetensors"), load_file(out / "model.safetensors")
    assert set(converted) == set(mine)
    for name, tensor in converted.items():
        assert mine[name].shape == tensor.shape and torch.equal(mine[name], tensor), name


@pytest.mark.slow
def test_base_and_adapter_export_as_their_merge(base7, tmp_path):
    from rwkv7_hf import RWKV7ForCausalLM
    model = randomize_adapters(apply_peft(load_model(base7), PeftConfig("lora", 8), verbose=False), scale=0.1)
    save_adapter(model, None, tmp_path / "adapter", step=1)
    merged = tmp_path / "merged.pth"
    merge_into_base(base7, read_adapter(tmp_path / "adapter"), merged)
    assert main(["--model", str(base7), "--adapter", str(tmp_path / "adapter"), "--format", "hf",
                 "--out", str(tmp_path / "a")]) == 0
    assert main(["--model", str(merged), "--format", "hf", "--out", str(tmp_path / "m")]) == 0
    a, m = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "m" / "model.safetensors")
    assert all(torch.equal(a[k], m[k]) for k in a)
    theirs = RWKV7ForCausalLM.from_pretrained(tmp_path / "a", dtype=torch.float32, use_kernels=False).eval()
    tokens = torch.randint(0, TINY7.vocab_size, (1, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = model(tokens)
        got = theirs(tokens).logits
    assert ((got - want).abs().max() / want.abs().max()).item() < 1e-4
