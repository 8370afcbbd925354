"""src/model/config.py: presets, inference from a checkpoint, validation."""

import json

import pytest

from src.model import RWKV6Config, preset_names, resolve_config
from src.model import init_state_dict

# The sizes the foundation issue spells out: (n_layer, n_embd, dim_ffn).
ISSUE_SIZES = {"0.1b": (12, 768, 2688), "0.4b": (24, 1024, 3584), "1.6b": (24, 2048, 7168),
               "3b": (32, 2560, 8960), "7b": (32, 4096, 14336), "14b": (61, 4096, 14336)}


def test_all_presets_exist():
    assert set(preset_names()) == {"tiny", *ISSUE_SIZES}


@pytest.mark.parametrize("name", sorted(ISSUE_SIZES))
def test_preset_sizes(name):
    c = RWKV6Config.preset(name)
    assert (c.n_layer, c.n_embd, c.dim_ffn) == ISSUE_SIZES[name]
    assert c.vocab_size == 65536 and c.head_size == 64 and c.dim_att == c.n_embd
    big = name in ("7b", "14b")
    assert (c.d_mix_lora, c.d_decay_lora) == ((64, 128) if big else (32, 64))


def test_tiny_preset_is_small_but_real():
    c = RWKV6Config.preset("tiny")
    assert c.n_layer >= 2 and c.n_head >= 2 and c.vocab_size == 65536


def test_defaults_follow_rwkv_lm():
    c = RWKV6Config(n_layer=2, n_embd=2560)
    assert c.dim_att == 2560 and c.dim_ffn == 8960 and c.n_head == 40


@pytest.mark.parametrize("d_mix,d_decay", [(32, 64), (64, 128)])
def test_config_is_inferred_from_a_state_dict(d_mix, d_decay):
    c = RWKV6Config(n_layer=3, n_embd=128, vocab_size=333, dim_ffn=256, d_mix_lora=d_mix, d_decay_lora=d_decay)
    sd = init_state_dict(c)
    assert RWKV6Config.from_state_dict(sd) == c
    assert RWKV6Config.from_state_dict(sd, grad_cp=True).grad_cp


@pytest.mark.parametrize("kwargs,message", [
    (dict(n_layer=0, n_embd=64), "n_layer must be a positive integer, got 0"),
    (dict(n_layer=2, n_embd=100), "dim_att=100 is not a multiple of head_size=64"),
    (dict(n_layer=2, n_embd=128, wkv_backend="fast"), "wkv_backend must be one of"),
    (dict(n_layer=2, n_embd=128, grad_cp=1), "grad_cp must be True or False"),
])
def test_bad_values(kwargs, message):
    with pytest.raises(ValueError) as e:
        RWKV6Config(**kwargs)
    assert message in str(e.value)


def test_json_files(tmp_path):
    good = tmp_path / "m.json"
    good.write_text(json.dumps({"n_layer": 2, "n_embd": 128}))
    assert resolve_config(str(good), grad_cp=True) == RWKV6Config(n_layer=2, n_embd=128, grad_cp=True)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"n_layer": 2, "n_embd": 128, "n_embd2": 1}))
    with pytest.raises(ValueError, match="bad.json: unknown RWKV6Config field\\(s\\) \\['n_embd2'\\]"):
        RWKV6Config.from_json(bad)
    with pytest.raises(FileNotFoundError, match="nope.json does not exist"):
        RWKV6Config.from_json(tmp_path / "nope.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ValueError, match="broken.json is not valid JSON"):
        RWKV6Config.from_json(broken)
    with pytest.raises(ValueError, match="unknown model preset '5b'"):
        resolve_config("5b")


def test_shape_signature_ignores_runtime_options():
    c = RWKV6Config.preset("tiny")
    assert c.shape_signature() == c.replace(grad_cp=True, wkv_backend="naive").shape_signature()
    assert c.shape_signature() != c.replace(n_layer=3).shape_signature()
