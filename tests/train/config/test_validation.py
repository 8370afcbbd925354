"""src/train/config/validation.py: the values checked alone, as one-line errors, before anything is written."""

import pytest

from src.train.config import config_from_values, validate
from train import main as train_main


def test_validate_reads_no_file(good, monkeypatch):
    import builtins
    import pathlib
    monkeypatch.setattr(builtins, "open", lambda *a, **k: pytest.fail("validate opened a file"))
    monkeypatch.setattr(pathlib.Path, "is_file", lambda self: pytest.fail("validate looked for a file"))
    validate(config_from_values({}, {**good, "load_model": "/nowhere.pth", "data_file": "/nothing"}))


@pytest.mark.parametrize("change, message", [
    ({"strategy": "ddp"}, r"--strategy 'ddp' is not one of deepspeed_stage_1"),
    ({"precision": "fp16"}, r"--precision 'fp16' is not one of bf16, fp32, tf32"),
    ({"data_type": "jsonl"}, r"--data_type 'jsonl' is not one of binidx, pad, sft"),
    ({"lr_schedule": "linear"}, r"--lr_schedule 'linear' is not one of cos, exp, constant"),
    ({"wkv_backend": "fast"}, r"--wkv_backend 'fast' is not one of auto, naive, chunked, cuda"),
    ({"micro_bsz": 0}, r"--micro_bsz must be positive, got 0"),
    ({"warmup_steps": -1}, r"--warmup_steps must not be negative, got -1"),
    ({"lr_init": 0}, r"--lr_init and --lr_final must be positive"),
    ({"lr_init": 1e-4, "lr_final": 1e-3}, r"--lr_final 0.001 is above --lr_init 0.0001: the learning rate would rise"),
    ({"beta2": 1.0}, r"--beta1 and --beta2 must be in \[0, 1\)"),
    ({"adam_eps": 0}, r"--adam_eps must be positive"),
    ({"warmup_steps": 20}, r"--warmup_steps 20 leaves no steps of the 20 to train after the warmup; give a smaller"),
    ({"strategy": "deepspeed_stage_2_offload"}, r"offloads to the CPU from a GPU; on a CPU use deepspeed_stage_1/2/3"),
])
def test_bad_values_are_one_line_errors(good, change, message):
    with pytest.raises(ValueError, match=message) as e:
        validate(config_from_values({}, {**good, **change}))
    assert "\n" not in str(e.value)


def test_train_py_reports_one_line_and_exit_code_2(good, capsys, tmp_path):
    argv = [f"--{k}={v}" for k, v in {**good, "micro_bsz": 0, "proj_dir": str(tmp_path / "run")}.items()]
    assert train_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == "train.py: error: --micro_bsz must be positive, got 0"
    assert not (tmp_path / "run").exists()
