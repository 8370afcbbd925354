"""src/train/config/derived.py: the values derived when not given, one rule wherever the others come from."""

import json

import pytest
import torch

from src.train.config import config_from_values, parse_args
from src.train.preflight import preflight


def test_derived_values_follow_one_rule_wherever_the_others_come_from(tmp_path):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"lr_init": 4e-4, "epoch_steps": 1000}))
    for cfg in (parse_args(["--config", str(f)]), parse_args(["--lr", "4e-4"]),
                config_from_values({"lr": 4e-4})):
        assert cfg.lr_final == pytest.approx(4e-5) and cfg.derived["lr_final"] == "lr_init / 10"
    f.write_text(json.dumps({"lr_init": 2e-5, "lr_final": 2e-5}))
    cfg = parse_args(["--config", str(f), "--lr", "3e-3", "--steps", "40"])
    assert (cfg.lr_init, cfg.lr_final) == (3e-3, 2e-5) and "lr_final" not in cfg.derived    # given: used
    cfg = parse_args(["--steps", "50", "--gpus", "0"])
    assert (cfg.warmup_steps, cfg.precision) == (5, "fp32")
    assert cfg.derived["warmup_steps"] == "a tenth of the 50-step run" and "no GPU" in cfg.derived["precision"]
    cfg = parse_args(["--steps", "500", "--gpus", "0", "--precision", "bf16", "--warmup_steps", "3"])
    assert (cfg.warmup_steps, cfg.precision, cfg.derived) == (3, "bf16", {"lr_final": "lr_init / 10"})
    assert parse_args(["--steps", "500"]).derived["warmup_steps"] == "10"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):     # --gpus 1 derives bf16, then finds no GPU
            preflight(parse_args(["--gpus", "1", "--model", "tiny"]))
        assert parse_args(["--gpus", "1"]).precision == "bf16"
