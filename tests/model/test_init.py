"""src/model/init.py (python -m src.init_model): RWKV-LM's initialisation scheme, and the command line."""

import math

import pytest
import torch

from src.model import RWKV6Config
from src.model.init import init_state_dict, main
from src.model import load_rwkv6
from src.utils.atomic import umask

CONFIG = RWKV6Config(n_layer=3, n_embd=128, vocab_size=1000, dim_ffn=256)


@pytest.fixture(scope="module")
def sd():
    return init_state_dict(CONFIG, seed=0, dtype=torch.float32)


def test_time_parameters_follow_rwkv_lm(sd):
    """RWKV-LM's loops, transcribed literally for layer 1 of 3."""
    layer, n_layer, C = 1, 3, 128
    ratio_0_to_1 = layer / (n_layer - 1)
    ratio_1_to_almost0 = 1.0 - (layer / n_layer)
    ddd = [i / C for i in range(C)]
    att = "blocks.1.att."
    expect = {
        att + "time_maa_x": [1.0 - d ** ratio_1_to_almost0 for d in ddd],
        att + "time_maa_v": [1.0 - (d ** ratio_1_to_almost0 + 0.3 * ratio_0_to_1) for d in ddd],
        att + "time_maa_g": [1.0 - d ** (0.5 * ratio_1_to_almost0) for d in ddd],
        att + "time_decay": [-6 + 5 * (n / (C - 1)) ** (0.7 + 1.3 * ratio_0_to_1) for n in range(C)],
        att + "time_faaaa": [ratio_0_to_1 * (1 - (n / (C - 1))) + ((n + 1) % 3 - 1) * 0.1 for n in range(C)],
        "blocks.1.ffn.time_maa_k": [1.0 - d ** (ratio_1_to_almost0 ** 3) for d in ddd],
        att + "ln_x.weight": [((1 + layer) / n_layer) ** 0.7] * C,
    }
    for key, values in expect.items():
        assert torch.allclose(sd[key].flatten(), torch.tensor(values), atol=1e-6), key
    assert sd[att + "time_faaaa"].shape == (2, 64)


def test_matrices_follow_rwkv_lm(sd):
    eye = torch.eye(128)
    w = sd["blocks.0.att.receptance.weight"]
    assert torch.allclose(w @ w.T, eye, atol=1e-4)                       # orthogonal, gain 1
    k = sd["blocks.2.att.key.weight"]
    assert torch.allclose(k @ k.T, 0.01 * eye, atol=1e-5)                # gain 0.1
    for zero in ("blocks.0.att.output.weight", "blocks.1.ffn.value.weight", "blocks.2.ffn.receptance.weight",
                 "blocks.0.att.time_maa_w1", "blocks.0.att.time_decay_w1"):
        assert sd[zero].abs().sum() == 0, zero
    assert sd["blocks.0.att.time_maa_w2"].abs().max() <= 0.01
    assert sd["emb.weight"].abs().max() <= 1e-4
    head = sd["head.weight"]                                             # (1000, 128): orthonormal columns
    gain = 0.5 * math.sqrt(1000 / 128)
    assert torch.allclose(head.T @ head, gain ** 2 * eye, rtol=1e-4, atol=1e-3)


def test_nonzero_fills_only_the_zero_tensors(sd):
    nz = init_state_dict(CONFIG, seed=0, dtype=torch.float32, nonzero=True)
    assert nz["blocks.0.att.output.weight"].abs().sum() > 0
    assert nz["blocks.0.att.time_decay_w1"].abs().sum() > 0
    assert torch.equal(nz["blocks.1.att.time_decay"], sd["blocks.1.att.time_decay"])


def test_seeded():
    a = init_state_dict(CONFIG, seed=1)
    b = init_state_dict(CONFIG, seed=1)
    c = init_state_dict(CONFIG, seed=2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["head.weight"], c["head.weight"])
    assert {v.dtype for v in a.values()} == {torch.bfloat16}


def test_command_line(tmp_path, capsys):
    out = tmp_path / "tiny.pth"
    assert main(["--config", "configs/model/rwkv6-tiny.json", "--out", str(out)]) == 0
    model = load_rwkv6(out)
    assert model.config == RWKV6Config.preset("tiny")
    assert torch.load(out)["head.weight"].dtype == torch.bfloat16
    capsys.readouterr()
    before = out.read_bytes()
    assert main(["--config", "tiny", "--out", str(out), "--seed", "1"]) == 2
    assert "tiny.pth already exists; pass --overwrite to replace it" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert main(["--config", "tiny", "--out", str(out), "--seed", "1", "--overwrite"]) == 0
    assert out.read_bytes() != before and oct(out.stat().st_mode & 0o777) == oct(0o666 & ~umask())
    assert main(["--config", "5b", "--out", str(tmp_path / "x.pth")]) == 2
    assert "unknown model preset" in capsys.readouterr().err
