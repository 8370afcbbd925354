"""A new model family defined in this file alone, registered through the public registry API, runs the whole
path without any edit of src/: random init and save, strict loading, adapters with the family's default
targets, training through train.py's code, merging, states and state files, greedy generation, eval.

The family: RWKV-6 with an output gate on its channel mix (a linear `ffn.gate`, C -> C), its own name,
preset prefix, checkpoint key and default targets (RWKV-6's eight linears and the new one)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch
import torch.nn as nn

import src.model.family as family_module
from src.data import BinIdx
from src.infer import Sampler, generate_tokens, load_for_inference
from src.infer.evaluate import evaluate
from src.model import (Family, RWKV6Config, RWKVBlock, RWKVModel, RWKVState, detect_family, families, get_family,
                       init_model, load_model, register_family, save_checkpoint)
from src.model.rwkv6 import Block, ChannelMix, TimeMix
from src.model.rwkv6 import init_tensor as rwkv6_init_tensor
from src.peft import PeftConfig, apply_peft, load_adapter, read_adapter
from src.peft.merge import merge_into_base
from src.train import config_from_values, run
from tests.helpers import rel_err


class GatedChannelMix(ChannelMix):
    """RWKV-6's channel mix, its output times sigmoid(x W_gate)."""

    def __init__(self, config, layer_id: int):
        super().__init__(config, layer_id)
        self.gate = nn.Linear(config.n_embd, config.n_embd, bias=False)

    def forward(self, x, shift=None):
        out, last = super().forward(x, shift)
        return out * torch.sigmoid(self.gate(x)), last


class GatedBlock(Block):
    def __init__(self, config, layer_id: int):
        RWKVBlock.__init__(self, config, layer_id, TimeMix, GatedChannelMix)


class GatedRWKV6(RWKVModel):
    def __init__(self, config):
        super().__init__(config, GatedBlock)


@dataclass(frozen=True)
class GatedConfig(RWKV6Config):
    family: ClassVar[str] = "x06g"


def init_gated(name, shape, config, gen, nonzero=False):
    if name.endswith("ffn.gate.weight"):
        return nn.init.orthogonal_(torch.empty(shape), gain=0.5, generator=gen)
    return rwkv6_init_tensor(name, shape, config, gen, nonzero=nonzero)


GATED = Family(
    name="x06g", title="RWKV-6 gated", preset_prefix="rwkv6g", config_class=GatedConfig, network_class=GatedRWKV6,
    init_tensor=init_gated,
    detect_keys=("blocks.0.att.time_faaaa", "blocks.0.att.time_maa_w1", "blocks.0.ffn.gate.weight"),
    default_targets=(*get_family("x060").default_targets, "ffn.gate"),
    state_file_transposed=True, operator=get_family("x060").operator)

CONFIG = GatedConfig(n_layer=2, n_embd=128)


@pytest.fixture
def gated(monkeypatch):
    """GATED registered for one test: the registry as it was comes back afterwards."""
    monkeypatch.setattr(family_module, "_REGISTRY", dict(family_module._REGISTRY))
    return register_family(GATED)


@pytest.fixture
def gated_checkpoint(gated, tmp_path):
    path = tmp_path / "gated.pth"
    save_checkpoint(init_model(CONFIG, seed=4, nonzero=True), path, dtype=torch.float32)
    return path


def test_registered_and_detected(gated, gated_checkpoint):
    assert families()[-1] is GATED and get_family("x06g") is GATED
    sd = torch.load(gated_checkpoint, weights_only=True)
    assert "blocks.1.ffn.gate.weight" in sd and detect_family(sd) is GATED
    del sd["blocks.0.ffn.gate.weight"]                   # without its key, the file reads as plain RWKV-6
    assert detect_family(sd).name == "x060"
    with pytest.raises(ValueError, match="same name"):
        register_family(Family(**{**GATED.__dict__, "title": "another"}))


def test_init_save_and_strict_load(gated_checkpoint, tmp_path):
    model = load_model(gated_checkpoint)
    assert isinstance(model, GatedRWKV6) and model.config == CONFIG
    reference = init_model(CONFIG, seed=4, nonzero=True)
    idx = torch.tensor([[3, 14, 15, 92, 65]])
    with torch.no_grad():
        assert torch.equal(model(idx), reference(idx))
    sd = torch.load(gated_checkpoint, weights_only=True)
    del sd["blocks.1.ffn.gate.weight"]
    torch.save(sd, tmp_path / "broken.pth")
    with pytest.raises(ValueError, match=r"missing key blocks\.1\.ffn\.gate\.weight \(expected shape \(128, 128\)\)"):
        load_model(tmp_path / "broken.pth")


@pytest.mark.parametrize("method,r", [("bone", 16), ("lora", 8)])
def test_adapters_take_the_family_targets(gated, method, r):
    model = apply_peft(init_model(CONFIG, seed=1, nonzero=True), PeftConfig(method, r), verbose=False)
    assert model.peft_config.targets == GATED.default_targets
    adapted = sorted({n.split(".", 2)[2] for n, m in model.named_modules() if hasattr(m, "adapter_names")})
    assert adapted == sorted(GATED.default_targets) and "ffn.gate" in adapted


def test_state_across_calls_and_state_files(gated, tmp_path):
    model = init_model(CONFIG, seed=2, nonzero=True).double()
    idx = torch.randint(0, 65536, (1, 11), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        whole = model(idx)
        first, state = model(idx[:, :6], return_state=True)
        second, _ = model(idx[:, 6:], state=state, return_state=True)
    assert state.family == "x06g"
    assert rel_err(torch.cat([first, second], 1), whole) < 1e-10
    state.save(tmp_path / "state.pth")
    back = RWKVState.from_file(tmp_path / "state.pth", CONFIG, dtype=torch.float64)
    assert back.family == "x06g" and all(torch.allclose(a, b.float()) for a, b in zip(back.wkv, state.wkv))
    stored = torch.load(tmp_path / "state.pth", weights_only=True)["blocks.0.att.time_state"]
    assert torch.equal(stored, state.wkv[0][0].transpose(-1, -2).float())     # [value, key], as the family says


@pytest.mark.slow
def test_train_merge_generate_eval(gated_checkpoint, sample_data, tmp_path):
    values = {"load_model": str(gated_checkpoint), "data_file": str(sample_data), "proj_dir": str(tmp_path / "run"),
              "gpus": 0, "strategy": "deepspeed_stage_2", "precision": "fp32", "ctx_len": 32, "micro_bsz": 2,
              "epoch_steps": 4, "epoch_count": 1, "lr_init": 1e-2, "lr_final": 1e-2, "warmup_steps": 0,
              "peft": "bone", "peft_r": 16, "grad_cp": 1, "seed": 3, "progress_bar": 0}
    run(config_from_values({}, values))
    with open(tmp_path / "run" / "metrics.csv") as f:
        losses = [float(r["loss"]) for r in csv.DictReader(f)]
    assert len(losses) == 4 and losses[-1] < losses[0]
    adapter = read_adapter(tmp_path / "run" / "checkpoint-000004")
    assert adapter.base_model["family"] == "x06g" and adapter.config.targets == GATED.default_targets

    merged = tmp_path / "merged.pth"
    merge_into_base(gated_checkpoint, adapter, merged)
    base_plus_adapter = load_adapter(load_model(gated_checkpoint), adapter)
    merged_model = load_model(merged)
    assert isinstance(merged_model, GatedRWKV6)
    idx = torch.tensor([[5, 60, 700, 8000, 9]])
    with torch.no_grad():
        assert rel_err(merged_model(idx), base_plus_adapter(idx)) < 1e-5

    model, _ = load_for_inference(gated_checkpoint, adapter=tmp_path / "run", device="cpu")
    prompt = [33, 44, 55]
    tokens = list(generate_tokens(model, prompt, Sampler(temperature=0), 6, stop_token=None))
    expected, ids = [], list(prompt)
    with torch.no_grad():
        for _ in range(6):                                   # greedy, the whole sequence each time
            ids.append(int(base_plus_adapter(torch.tensor([ids]))[0, -1].argmax()))
            expected.append(ids[-1])
    assert tokens == expected

    data = BinIdx(sample_data)
    assert evaluate(merged_model, data, 32, max_windows=3)["loss"] == pytest.approx(
        evaluate(base_plus_adapter, data, 32, max_windows=3)["loss"], rel=1e-5)
