"""--val_data: eval.py's loss during training, at the right steps, equal to evaluating the checkpoint,
without changing the training (dropout and the RNG untouched), through a resume too."""

import csv
from pathlib import Path

import pytest

from src.data import BinIdx
from src.infer.evaluate import evaluate
from src.model import load_rwkv6
from src.peft import load_adapter, read_adapter
from src.train import config_from_values, main, run
from tests.train.test_trainer import as_argv, flags


def rows(proj) -> list[dict]:
    return list(csv.DictReader(open(Path(proj) / "metrics.csv")))


def lora(base, data, proj, **changes):
    """LoRA with dropout: the RNG matters, so a validation that drew from it would change the run."""
    return flags(base, data, proj, **{"peft": "lora", "peft_r": 8, "lora_alpha": 16, "lora_dropout": 0.1,
                                      "epoch_steps": 5, "warmup_steps": 0, **changes})


@pytest.mark.slow
def test_validation_runs_every_n_steps_and_at_the_end(tiny_fp32_checkpoint, sample_data, tmp_path):
    proj = tmp_path / "val"
    run(config_from_values({}, lora(tiny_fp32_checkpoint, sample_data, proj, val_data=str(sample_data), val_every=2,
                                    val_windows=3)))
    recorded = rows(proj)
    assert [r["step"] for r in recorded if r["val_loss"]] == ["2", "4", "5"]
    # the last one is the loss eval.py gives the checkpoint written at that step
    model = load_adapter(load_rwkv6(tiny_fp32_checkpoint), read_adapter(proj / "checkpoint-000005"))
    expected = evaluate(model, BinIdx(sample_data), 32, "binidx", max_windows=3)["loss"]
    assert float(recorded[-1]["val_loss"]) == pytest.approx(expected, rel=1e-5)
    # and the training itself is the run without validation, step for step
    plain = tmp_path / "plain"
    run(config_from_values({}, lora(tiny_fp32_checkpoint, sample_data, plain)))
    assert [r["loss"] for r in rows(plain)] == [r["loss"] for r in recorded]
    assert all(r["val_loss"] == "" for r in rows(plain))


@pytest.mark.slow
def test_a_resumed_run_with_validation_stays_identical(tiny_fp32_checkpoint, sample_data, tmp_path):
    whole = tmp_path / "whole"
    run(config_from_values({}, lora(tiny_fp32_checkpoint, sample_data, whole, val_data=str(sample_data), val_every=2,
                                    val_windows=2, epoch_steps=3, epoch_count=2, lr_schedule="constant")))
    parts = tmp_path / "parts"
    values = lora(tiny_fp32_checkpoint, sample_data, parts, val_data=str(sample_data), val_every=2, val_windows=2,
                  epoch_steps=3, epoch_count=1, lr_schedule="constant")
    run(config_from_values({}, values))
    run(config_from_values({}, {**values, "epoch_count": 2, "resume": "latest"}))
    a, b = rows(whole), rows(parts)
    assert [r["loss"] for r in a] == [r["loss"] for r in b]
    assert [r["val_loss"] for r in a if r["step"] != "3"] == [r["val_loss"] for r in b if r["step"] != "3"]


def test_bad_validation_flags(tiny_fp32_checkpoint, sample_data, tmp_path, capsys):
    values = lora(tiny_fp32_checkpoint, sample_data, tmp_path / "run")
    assert main(as_argv({**values, "val_every": 3})) == 2
    assert "give --val_data PREFIX" in capsys.readouterr().err
    assert main(as_argv({**values, "val_data": str(tmp_path / "nowhere")})) == 2
    assert "--val_data: binidx data" in capsys.readouterr().err and not (tmp_path / "run").exists()


@pytest.mark.slow
def test_validation_under_zero3(tiny_fp32_checkpoint, sample_data, tmp_path):
    """ZeRO-3 partitions the weights: the validation forward gathers them, and gives the loss of ZeRO-2."""
    for strategy in ("deepspeed_stage_2", "deepspeed_stage_3"):
        run(config_from_values({}, lora(tiny_fp32_checkpoint, sample_data, tmp_path / strategy, strategy=strategy,
                                        lora_dropout=0.0, val_data=str(sample_data), val_windows=2, epoch_steps=2)))
    two, three = rows(tmp_path / "deepspeed_stage_2"), rows(tmp_path / "deepspeed_stage_3")
    assert three[-1]["val_loss"] and float(three[-1]["val_loss"]) == pytest.approx(float(two[-1]["val_loss"]), rel=1e-4)
