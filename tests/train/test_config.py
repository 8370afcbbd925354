"""src/train/config.py: flags, config files, the short forms of scripts/train_*.sh, derived values,
--help, validation of values; src/train/trainer.py's preflight of files, shapes and data."""

import dataclasses
import json

import pytest
import torch

from src.peft import PeftConfig
from src.train.config import (KNOWN_KEYS, PEFT_FLAGS, TRAIN_FLAGS, TrainConfig, build_parser, config_from_values,
                              parse_args, read_config_file, validate)
from src.train.trainer import preflight
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


def test_the_seed_is_one_value():
    cfg = TrainConfig(seed=7)
    assert cfg.peft.seed == 7
    assert dataclasses.replace(cfg, seed=9).peft.seed == 9
    assert TrainConfig(seed=3, peft=PeftConfig("lora", 8, seed=1)).peft == PeftConfig("lora", 8, seed=3)


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
            assert "one of: " + ", ".join(fields[name].metadata["choices"]) in helps[flag]
    for flag in PEFT_FLAGS:
        assert "(default: " in helps[flag], helps[flag]
    assert helps["lr_final"] == "learning rate at the last step (default: lr_init / 10)"
    assert helps["peft_r"].endswith("(default: 64)")
    assert "one of: bone, bat, disha, lora, pissa, state, none" in helps["peft"]


def test_train_py_help(capsys):
    with pytest.raises(SystemExit) as e:
        train_main(["--help"])
    assert e.value.code == 0 and "--warmup_steps" in capsys.readouterr().out


# ------------------------------------------------------------------ validate (values) and preflight (files, shapes, data)

@pytest.fixture
def good(tiny_fp32_checkpoint, sample_data):
    """Flags that pass: the tiny checkpoint and the sample data on the CPU."""
    return {"load_model": str(tiny_fp32_checkpoint), "data_file": str(sample_data), "ctx_len": 64, "gpus": 0,
            "strategy": "deepspeed_stage_2", "peft": "bone", "peft_r": 16, "epoch_steps": 20}


def check(values: dict):
    cfg = config_from_values({}, values)
    validate(cfg)
    return preflight(cfg)


def test_good_flags_pass(good, tiny_config):
    assert check(good).shape_signature() == tiny_config.shape_signature()
    assert check({**good, "load_model": "", "model": "tiny"}).n_layer == tiny_config.n_layer


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


@pytest.mark.parametrize("change, message", [
    ({"load_model": "missing.pth"}, r"--load_model missing.pth does not exist"),
    ({"load_model": "", "model": ""}, r"give --load_model BASE.pth \(to fine-tune\) or --model PRESET"),
    ({"model": "0.1b"}, r"--model 0.1b does not describe --load_model .*tiny-fp32.pth \(--model vs checkpoint: n_layer 12 vs 2"),
    ({"peft": "bat", "peft_r": 48}, r"bat: r=48 must divide both dimensions of blocks.0.att.receptance \(128 x 128\)"),
    ({"peft_targets": ["att.nothing"]}, r"att.nothing"),
    ({"data_file": ""}, r"--data_file PREFIX is required \(make one with scripts/make_data.sh\)"),
    ({"ctx_len": 4096}, r"fewer than one window of ctx_len \+ 1 = 4097: lower --ctx_len or add data"),
    ({"data_type": "sft"}, r"not written from prompt/response or messages records"),
])
def test_preflight_problems_are_one_line_errors(good, change, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message) as e:
        check({**good, **change})
    assert "\n" not in str(e.value)


def test_missing_data_file(good, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"binidx data .*nothing: .*nothing\.idx does not exist"):
        check({**good, "data_file": str(tmp_path / "nothing")})


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_gpus_without_a_gpu(good):
    with pytest.raises(ValueError, match=r"no CUDA device is visible"):
        check({**good, "gpus": 1})


def test_train_py_reports_one_line_and_exit_code_2(good, capsys, tmp_path):
    argv = [f"--{k}={v}" for k, v in {**good, "micro_bsz": 0, "proj_dir": str(tmp_path / "run")}.items()]
    assert train_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == "train.py: error: --micro_bsz must be positive, got 0"
    assert not (tmp_path / "run").exists()
