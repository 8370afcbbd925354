"""export.py --format st: ai00 / web-rwkv's .st, checked against ai00's converter rules written out here
(not our code's): keys renamed then lower-cased, the listed tensors' last two dimensions swapped, every
tensor fp16, metadata {"format": "pt"}; read back with the safetensors package, as ai00 reads it."""

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from src.export.cli import main
from src.model import RWKVState, families, get_family, load_model
from src.peft import PeftConfig, apply_peft, save_adapter
from src.peft.merge import merge_into_base
from tests.peft.helpers import randomize_adapters

FAMILIES = [f.name for f in families()]
AI00_RENAMES = [("time_faaaa", "time_first"), ("time_maa", "time_mix"), ("lora_A", "lora.0"), ("lora_B", "lora.1")]
AI00_TRANSPOSED = ["time_mix_w1", "time_mix_w2", "time_decay_w1", "time_decay_w2", "w1", "w2", "a1", "a2", "g1", "g2",
                   "v1", "v2", "time_state", "lora.0"]


def ai00_expectation(tensors: dict) -> dict:
    """What ai00's assets/scripts/convert_safetensors.py makes of these tensors, by its stated rules."""
    out = {}
    for key, value in tensors.items():
        for old, new in AI00_RENAMES:
            key = key.replace(old, new)
        key = key.lower()
        value = value.half()
        if any(name in key for name in AI00_TRANSPOSED):
            value = value.transpose(value.dim() - 2, value.dim() - 1)
        out[key] = value.contiguous()
    return out




@pytest.mark.parametrize("family", FAMILIES)
def test_a_model_is_what_ai00s_rules_make_of_it(tiny_bases, family, tmp_path):
    out = tmp_path / "m.st"
    assert main(["--model", str(tiny_bases[family]), "--format", "st", "--out", str(out)]) == 0
    got = load_file(out)
    want = ai00_expectation(torch.load(tiny_bases[family], weights_only=True))
    assert list(got) == sorted(want) or set(got) == set(want)
    for key, value in want.items():
        assert got[key].dtype == torch.float16 and got[key].shape == value.shape, key
        assert torch.equal(got[key], value), key
    with safe_open(out, "pt") as f:
        assert f.metadata() == {"format": "pt"}
    transposed = {k for k in want if any(n in k for n in AI00_TRANSPOSED)}
    assert transposed                                          # the rules did something on this family


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_base_and_adapter_export_as_their_merge(tiny_bases, family, tmp_path):
    model = randomize_adapters(apply_peft(load_model(tiny_bases[family]), PeftConfig("bone", 16), verbose=False))
    save_adapter(model, None, tmp_path / "adapter", step=1)
    merged = tmp_path / "merged.pth"
    from src.peft import read_adapter
    merge_into_base(tiny_bases[family], read_adapter(tmp_path / "adapter"), merged)
    assert main(["--model", str(tiny_bases[family]), "--adapter", str(tmp_path / "adapter"), "--format", "st",
                 "--out", str(tmp_path / "a.st")]) == 0
    assert main(["--model", str(merged), "--format", "st", "--out", str(tmp_path / "m.st")]) == 0
    a, m = load_file(tmp_path / "a.st"), load_file(tmp_path / "m.st")
    assert set(a) == set(m) and all(torch.equal(a[k], m[k]) for k in a)
    base = load_file_of(tiny_bases[family], tmp_path)
    assert not torch.equal(a["blocks.0.att.key.weight"], base["blocks.0.att.key.weight"])


def load_file_of(path, tmp_path):
    assert main(["--model", str(path), "--format", "st", "--out", str(tmp_path / "base.st")]) == 0
    return load_file(tmp_path / "base.st")


@pytest.mark.parametrize("family", FAMILIES)
def test_a_state_file(family, tmp_path):
    """A state file as a state-tuning run writes it (the record tensor too): ai00's rules on its time_state
    tensors, the record left out."""
    config = get_family(family).config_class.preset("tiny")
    g = torch.Generator().manual_seed(0)
    wkv = [torch.randn(1, config.n_head, config.head_size, config.head_size, generator=g) for _ in range(config.n_layer)]
    state = RWKVState.zeros(config)
    state = RWKVState(state.att_shift, wkv, state.ffn_shift, family=family)
    path = state.save(tmp_path / "state.pth")
    stored = {k: v for k, v in torch.load(path, weights_only=True).items() if k.endswith("time_state")}
    assert len(stored) == config.n_layer
    assert main(["--state", str(path), "--format", "st", "--out", str(tmp_path / "s.st")]) == 0
    got = load_file(tmp_path / "s.st")
    want = ai00_expectation(stored)
    assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want)


@pytest.mark.parametrize("argv, message", [
    (["--format", "st", "--out", "{t}/x.st"], "--model PATH is required"),
    (["--model", "{base}", "--format", "st", "--out", "{base}", "--overwrite"], "is one of this command's inputs"),
    (["--model", "{base}", "--format", "st", "--out", "{t}/exists.st"], "already exists; pass --overwrite"),
    (["--model", "{base}", "--format", "st", "--dtype", "bf16", "--out", "{t}/x.st"], "--format st holds f16 only"),
    (["--model", "{t}/nowhere.pth", "--format", "st", "--out", "{t}/x.st"], "--model {t}/nowhere.pth does not exist"),
    (["--model", "{t}/odd.pth", "--format", "st", "--out", "{t}/x.st"], "odd.pth"),
    (["--model", "{base}", "--state", "{t}/s.pth", "--format", "st", "--out", "{t}/x.st"], "in two runs"),
])
def test_bad_input_is_one_line(tiny_bases, tmp_path, capsys, argv, message):
    (tmp_path / "exists.st").write_bytes(b"keep")
    torch.save({"something.else": torch.zeros(3)}, tmp_path / "odd.pth")
    torch.save({"blocks.0.att.time_state": torch.zeros(2, 64, 64)}, tmp_path / "s.pth")
    fill = {"{t}": str(tmp_path), "{base}": str(tiny_bases["x060"])}
    args = []
    for a in argv:
        for k, v in fill.items():
            a = a.replace(k, v)
        args.append(a)
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    text = message
    for k, v in fill.items():
        text = text.replace(k, v)
    assert len(err) == 1 and text in err[0], err
    assert (tmp_path / "exists.st").read_bytes() == b"keep" and not (tmp_path / "x.st").exists()
