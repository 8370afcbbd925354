"""src/train/config/reading.py: flags, config files, the short forms of scripts/train_*.sh, a run's
train_config.json read back, --help."""

import dataclasses
import json

import pytest

from src.peft import PeftConfig
from src.train.config import (KNOWN_KEYS, PEFT_FLAGS, TRAIN_FLAGS, TrainConfig, build_parser, config_from_values,
                              parse_args, read_config_file)
from train import main as train_main


def test_defaults_files_and_flags_in_order(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"peft": "lora", "peft_r": 8, "ctx_len": 256, "micro-bsz": 3}))
    (tmp_path / "b.yaml").write_text("peft_r: 16\ntrain_parts: [time, ln]\n")
    cfg = parse_args(["--config", str(tmp_path / "a.json"), "--config", str(tmp_path / "b.yaml"), "--ctx_len", "64"])
    assert (cfg.peft.method, cfg.peft.r, cfg.ctx_len, cfg.micro_bsz, cfg.peft.train_parts) == \
        ("lora", 16, 64, 3, ("time", "ln"))
    assert cfg.lr_init == TrainConfig.lr_init and cfg.strategy == "deepspeed_stage_1"
    assert cfg.peft.seed == cfg.seed == 42                       # --seed also seeds the adapters' init


def test_the_adapter_settings_are_a_peft_config():
    cfg = parse_args(["--peft", "bat", "--peft_r", "16", "--bat_index", "in", "--peft_targets", "att.key", "ffn.*",
                      "--seed", "3"])
    assert cfg.peft == PeftConfig(method="bat", r=16, bat_index="in", targets=("att.key", "ffn.*"), seed=3)
    assert parse_args([]).peft == PeftConfig(method="bone", r=64, seed=42)
    assert parse_args(["--peft", "none"]).peft is None
    preset = {"peft": "lora", "peft_r": 8, "lora_alpha": 16}             # a file's flags of another method: left out
    assert config_from_values(preset, {"peft": "bone"}).peft == PeftConfig(method="bone", r=8, seed=42)
    assert config_from_values(preset, {"peft": "none"}).peft is None
    with pytest.raises(ValueError, match=r"PeftConfig.dropout must be in \[0, 1\), got 1.5 \(flag --lora_dropout\)"):
        parse_args(["--peft", "lora", "--lora_dropout", "1.5"])


def test_short_forms():
    cfg = parse_args(["--rank", "32", "--data", "d/x", "--lr", "1e-3", "--gpus", "0", "--model", "base.pth"])
    assert (cfg.peft.r, cfg.data_file, cfg.lr_init, cfg.lr_final) == (32, "d/x", 1e-3, pytest.approx(1e-4))
    assert cfg.accelerator == "cpu" and cfg.load_model == "base.pth" and cfg.model == ""
    cfg = parse_args(["--gpus", "4", "--model", "3b", "--lr", "1e-3", "--lr_final", "5e-4"])
    assert (cfg.accelerator, cfg.devices, cfg.model, cfg.lr_final) == ("gpu", 4, "3b", 5e-4)
    cfg = parse_args(["--steps", "25", "--epoch_count", "5"])
    assert (cfg.epoch_steps, cfg.total_steps) == (5, 25)
    assert parse_args(["--train_parts", '["time","ln"]']).peft.train_parts == ("time", "ln")
    assert parse_args(["--grad_cp", "true"]).grad_cp is True
    assert parse_args(["--peft", "lora", "--lora_alpha", "none"]).peft.alpha is None


def test_later_layers_win_over_earlier_short_forms(tmp_path):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"gpus": 0, "model": "base.pth", "steps": 40}))
    cfg = parse_args(["--config", str(f), "--accelerator", "auto", "--load_model", "other.pth", "--epoch_steps", "7"])
    assert (cfg.accelerator, cfg.load_model, cfg.epoch_steps) == ("auto", "other.pth", 7)
    cfg = parse_args(["--config", str(f)])
    assert (cfg.accelerator, cfg.load_model, cfg.epoch_steps) == ("cpu", "base.pth", 40)


def test_train_config_json_reads_back_as_the_same_configuration(tmp_path):
    cfg = parse_args(["--peft", "lora", "--peft_r", "8", "--lora_alpha", "16", "--train_parts", "ln", "--lr", "1e-3",
                      "--steps", "30", "--gpus", "0", "--seed", "5"])
    f = tmp_path / "train_config.json"
    f.write_text(json.dumps(cfg.to_dict()))
    recorded = json.loads(f.read_text())
    assert recorded["derived"] == cfg.derived and recorded["lr_final"] == pytest.approx(1e-4)
    assert (recorded["peft"], recorded["peft_r"], recorded["train_parts"]) == ("lora", 8, ["ln"])
    again = parse_args(["--config", str(f)])
    assert again == cfg and again.derived == cfg.derived
    moved = parse_args(["--config", str(f), "--lr", "2e-3"])           # the derived values are derived again
    assert moved.lr_final == pytest.approx(2e-4)
    assert set(read_config_file(f)) == set(cfg.to_flags()) - set(cfg.derived)


@pytest.mark.parametrize("argv, message", [
    (["--ctx_len", "abc"], r"--ctx_len 'abc': invalid literal for int"),
    (["--grad_cp", "maybe"], r"--grad_cp 'maybe': expected 0/1 or true/false"),
    (["--steps", "0"], r"--steps must be positive, got 0"),
    (["--steps", "10", "--epoch_steps", "3", "--epoch_count", "2"], r"--steps 10 disagrees with --epoch_steps 3 x --epoch_count 2"),
    (["--gpus", "-1"], r"--gpus must be 0 \(the CPU\) or a number of GPUs, got -1"),
    (["--config", "nowhere.json"], r"--config nowhere.json does not exist"),
    (["--peft", "dora"], r"--peft 'dora' is not one of bone, bat, disha, lora, pissa, state, none"),
    (["--peft_r", "abc"], r"--peft_r 'abc': invalid literal for int"),
])
def test_bad_flags(argv, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        parse_args(argv)


def test_values_follow_the_field_types(tmp_path):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"ctx_len": 256.0, "lr_init": 1, "grad_cp": 1, "peft_targets": "att.key,att.value"}))
    cfg = parse_args(["--config", str(f)])
    assert (cfg.ctx_len, cfg.lr_init, cfg.grad_cp, cfg.peft.targets) == (256, 1.0, True, ("att.key", "att.value"))
    assert isinstance(cfg.ctx_len, int) and isinstance(cfg.lr_init, float)
    f.write_text(json.dumps({"ctx_len": 256.5}))
    with pytest.raises(ValueError, match=r"--ctx_len 256.5: expected a whole number"):
        parse_args(["--config", str(f)])
    f.write_text(json.dumps({"proj_dir": ["a"]}))
    with pytest.raises(ValueError, match=r"--proj_dir \['a'\]: expected a string"):
        parse_args(["--config", str(f)])


def test_bad_config_files(tmp_path):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"lr_int": 1e-3}))
    with pytest.raises(ValueError, match=r"c\.json: unknown key 'lr_int' \(did you mean lr_init\?\)"):
        parse_args(["--config", str(f)])
    f.write_text("{not json")
    with pytest.raises(ValueError, match=r"c\.json cannot be parsed"):
        parse_args(["--config", str(f)])
    f.write_text("[1, 2]")
    with pytest.raises(ValueError, match="must hold a mapping"):
        parse_args(["--config", str(f)])


def test_unknown_flag_exits_with_usage(capsys):
    with pytest.raises(SystemExit) as e:
        parse_args(["--lr_int", "1"])
    assert e.value.code == 2 and "unrecognized arguments: --lr_int 1" in capsys.readouterr().err


def test_help_documents_every_flag():
    parser = build_parser()
    text = " ".join(parser.format_help().split())                 # argparse wraps lines
    helps = {a.option_strings[0].lstrip("-"): a.help for a in parser._actions if a.option_strings}
    flags = [*TRAIN_FLAGS, *PEFT_FLAGS, "config", "rank", "data", "lr", "steps", "gpus"]
    assert set(KNOWN_KEYS) <= set(flags) and set(flags) <= set(helps)
    for flag in flags:
        assert f"--{flag} " in text and len((helps[flag] or "").split()) >= 3, f"--{flag} has no help"
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    for flag, name in TRAIN_FLAGS.items():
        assert "(default: " in helps[flag], helps[flag]
        if fields[name].metadata["choices"]:
            assert "one of: " + ", ".join(map(str, fields[name].metadata["choices"])) in helps[flag]
    for flag in PEFT_FLAGS:
        assert "(default: " in helps[flag], helps[flag]
    assert helps["lr_final"] == "learning rate at the last step (default: lr_init / 10)"
    assert helps["peft_r"].endswith("(default: 64)")
    assert "one of: bone, bat, disha, lora, pissa, state, none" in helps["peft"]


def test_train_py_help(capsys):
    with pytest.raises(SystemExit) as e:
        train_main(["--help"])
    assert e.value.code == 0 and "--warmup_steps" in capsys.readouterr().out
