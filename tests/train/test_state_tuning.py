"""State tuning through train.py (--peft state, --train_state 1, --load_state): only the states train,
the loss falls, checkpoints hold a state.pth the `rwkv` pip package runs to our logits, and resuming
restores the states."""

import csv
from pathlib import Path

import pytest
import torch

from src.model import RWKVState, load_rwkv6
from src.peft import load_adapter, read_adapter
from src.train import config_from_values, main, run
from tests.helpers import rel_err
from tests.model.test_state import pip_logits
from tests.train.test_trainer import as_argv, flags, sample_loss


def state_flags(base, data, proj, **changes):
    values = flags(base, data, proj, **{"peft": "state", "lr_init": 0.3, "lr_final": 0.1, "warmup_steps": 0,
                                        **changes})
    if values["peft"] == "state" and "peft_r" not in changes:
        values.pop("peft_r")                                   # state tuning has no rank
    return values


def losses(proj) -> list[float]:
    return [float(r["loss"]) for r in csv.DictReader(open(Path(proj) / "metrics.csv"))]


@pytest.mark.slow
def test_state_tuning_trains_only_the_states(tiny_fp32_checkpoint, sample_data, tmp_path):
    proj = tmp_path / "state"
    run(config_from_values({}, state_flags(tiny_fp32_checkpoint, sample_data, proj, epoch_steps=8)))
    curve = losses(proj)
    assert len(curve) == 8 and sum(curve[-3:]) < sum(curve[:3]), curve
    checkpoint = proj / "checkpoint-000008"
    adapter = read_adapter(checkpoint)
    assert sorted(adapter.tensors) == ["blocks.0.att.time_state", "blocks.1.att.time_state"]
    assert adapter.config.method == "state" and adapter.config.r is None
    file = torch.load(checkpoint / "state.pth", weights_only=True)
    assert all(torch.equal(file[k], v) for k, v in adapter.tensors.items()) and file["blocks.1.att.time_state"].any()
    tuned = load_adapter(load_rwkv6(tiny_fp32_checkpoint), adapter)
    assert sample_loss(tuned, sample_data) < sample_loss(load_rwkv6(tiny_fp32_checkpoint), sample_data) - 0.1

    # the `rwkv` package, handed state.pth as the runtimes take it, gives the tuned model's logits
    tokens = torch.randint(0, 65536, (20,), generator=torch.Generator().manual_seed(1))
    state = [t for i in range(2) for t in (torch.zeros(128), file[f"blocks.{i}.att.time_state"].transpose(1, 2)
                                           .contiguous(), torch.zeros(128))]
    theirs, _ = pip_logits(tiny_fp32_checkpoint, tokens.tolist(), state)
    with torch.no_grad():
        ours = tuned(tokens[None])[0]
        from_file = load_rwkv6(tiny_fp32_checkpoint)(tokens[None], state=RWKVState.from_file(checkpoint / "state.pth"))
    assert rel_err(ours, theirs) < 1e-4 and rel_err(from_file[0], theirs) < 1e-4


@pytest.mark.slow
def test_resuming_restores_the_states(tiny_fp32_checkpoint, sample_data, tmp_path):
    whole = tmp_path / "whole"
    same = dict(peft="bone", peft_r=16, train_state=1, lr_schedule="constant", lr_final=0.3)   # one schedule for both
    run(config_from_values({}, state_flags(tiny_fp32_checkpoint, sample_data, whole, epoch_steps=3, epoch_count=2,
                                           **same)))
    parts = tmp_path / "parts"
    values = state_flags(tiny_fp32_checkpoint, sample_data, parts, epoch_steps=3, epoch_count=1, **same)
    run(config_from_values({}, values))
    # resumed in infctx chunks (the uninterrupted run had none): the same training
    run(config_from_values({}, {**values, "epoch_count": 2, "resume": "latest", "chunk_ctx": 8}))
    assert losses(parts) == pytest.approx(losses(whole), rel=1e-5)
    a, b = read_adapter(whole / "checkpoint-000006").tensors, read_adapter(parts / "checkpoint-000006").tensors
    assert rel_err(b["blocks.1.att.time_state"], a["blocks.1.att.time_state"]) < 1e-5


@pytest.mark.slow
def test_load_state_starts_from_a_state_file(tiny_fp32_checkpoint, sample_data, tmp_path, capsys):
    first = tmp_path / "first"
    run(config_from_values({}, state_flags(tiny_fp32_checkpoint, sample_data, first, epoch_steps=4)))
    start = first / "checkpoint-000004" / "state.pth"
    again = tmp_path / "again"
    run(config_from_values({}, state_flags(tiny_fp32_checkpoint, sample_data, again, epoch_steps=1, lr_init=1e-30,
                                           lr_final=1e-30, load_state=str(start))))
    # with a vanishing learning rate the state stays what --load_state gave
    loaded = read_adapter(again / "checkpoint-000001").tensors
    started = {k: v for k, v in torch.load(start, weights_only=True).items() if k.endswith(".time_state")}
    assert len(started) == 2 and all(rel_err(loaded[k], v) < 1e-6 for k, v in started.items())
    assert losses(again)[0] < losses(first)[0]               # the first step already starts from the tuned state
    bad = state_flags(tiny_fp32_checkpoint, sample_data, tmp_path / "bad", load_state=str(start))
    assert main(as_argv({**bad, "peft": "bone", "peft_r": 16})) == 2
    assert "add --train_state 1 (or use --peft state)" in capsys.readouterr().err
    assert main(as_argv({**bad, "load_state": str(tiny_fp32_checkpoint)})) == 2
    assert "--load_state: state file" in capsys.readouterr().err and not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_state_tuning_a_random_base_stops_with_the_reason(sample_data, tmp_path, capsys):
    """RWKV-LM's random init zeroes att.output, the states' only way to the loss: nothing to learn."""
    values = state_flags("", sample_data, tmp_path / "run", model="tiny", load_model="", epoch_steps=3)
    assert main(as_argv(values)) == 3
    err = capsys.readouterr().err
    assert "exactly zero gradient" in err and "state-tune a trained base (--load_model)" in err
