"""src/train_config.py: flags, config files, the short forms of scripts/train_*.sh, validation."""

import json

import pytest
import torch

from src.train_config import TrainConfig, config_from_values, parse_args, validate
from train import main as train_main


def test_defaults_files_and_flags_in_order(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"peft": "lora", "peft_r": 8, "ctx_len": 256, "micro-bsz": 3}))
    (tmp_path / "b.yaml").write_text("peft_r: 16\ntrain_parts: [time, ln]\n")
    cfg = parse_args(["--config", str(tmp_path / "a.json"), "--config", str(tmp_path / "b.yaml"), "--ctx_len", "64"])
    assert (cfg.peft, cfg.peft_r, cfg.ctx_len, cfg.micro_bsz, cfg.train_parts) == ("lora", 16, 64, 3, ["time", "ln"])
    assert cfg.lr_init == TrainConfig.lr_init and cfg.strategy == "deepspeed_stage_1"


def test_short_forms():
    cfg = parse_args(["--rank", "32", "--data", "d/x", "--lr", "1e-3", "--gpus", "0", "--model", "base.pth"])
    assert (cfg.peft_r, cfg.data_file, cfg.lr_init, cfg.lr_final) == (32, "d/x", 1e-3, pytest.approx(1e-4))
    assert cfg.accelerator == "cpu" and cfg.load_model == "base.pth" and cfg.model == ""
    cfg = parse_args(["--gpus", "4", "--model", "3b", "--lr", "1e-3", "--lr_final", "5e-4"])
    assert (cfg.accelerator, cfg.devices, cfg.model, cfg.lr_final) == ("gpu", 4, "3b", 5e-4)
    cfg = parse_args(["--steps", "25", "--epoch_count", "5"])
    assert (cfg.epoch_steps, cfg.total_steps) == (5, 25)
    assert parse_args(["--train_parts", '["time","ln"]']).train_parts == ["time", "ln"]
    assert parse_args(["--grad_cp", "true"]).grad_cp is True and parse_args(["--lora_alpha", "none"]).lora_alpha is None


def test_command_line_beats_a_file(tmp_path):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"lr_init": 2e-5, "lr_final": 2e-5, "epoch_steps": 1000, "epoch_count": 1}))
    cfg = parse_args(["--config", str(f), "--lr", "3e-3", "--steps", "40"])
    assert (cfg.lr_init, cfg.lr_final, cfg.epoch_steps) == (3e-3, pytest.approx(3e-4), 40)
    cfg = parse_args(["--config", str(f)])
    assert (cfg.lr_init, cfg.lr_final, cfg.total_steps) == (2e-5, 2e-5, 1000)
    f.write_text(json.dumps({"lr": 1e-3, "rank": 4, "steps": 20, "gpus": 0}))
    cfg = parse_args(["--config", str(f)])
    assert (cfg.lr_init, cfg.lr_final, cfg.peft_r, cfg.total_steps, cfg.accelerator) == (1e-3, pytest.approx(1e-4), 4, 20, "cpu")


@pytest.mark.parametrize("argv, message", [
    (["--ctx_len", "abc"], r"--ctx_len 'abc': invalid literal for int"),
    (["--grad_cp", "maybe"], r"--grad_cp 'maybe': expected 0/1 or true/false"),
    (["--steps", "0"], r"--steps must be positive, got 0"),
    (["--steps", "10", "--epoch_steps", "3", "--epoch_count", "2"], r"--steps 10 disagrees with --epoch_steps 3 x --epoch_count 2"),
    (["--gpus", "-1"], r"--gpus must be 0 \(the CPU\) or a number of GPUs, got -1"),
    (["--config", "nowhere.json"], r"--config nowhere.json does not exist"),
])
def test_bad_flags(argv, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        parse_args(argv)


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


@pytest.fixture
def good(tiny_fp32_checkpoint, sample_data):
    """Flags that validate: the tiny checkpoint and the sample data on the CPU."""
    return {"load_model": str(tiny_fp32_checkpoint), "data_file": str(sample_data), "ctx_len": 64, "gpus": 0,
            "strategy": "deepspeed_stage_2", "peft": "bone", "peft_r": 16, "epoch_steps": 20}


def test_good_flags_validate(good, tiny_config):
    model_config = validate(config_from_values({}, good))
    assert model_config.shape_signature() == tiny_config.shape_signature()
    assert validate(config_from_values({}, {**good, "load_model": "", "model": "tiny"})).n_layer == tiny_config.n_layer


@pytest.mark.parametrize("change, message", [
    ({"peft": "dora"}, r"--peft 'dora' is not one of bone, bat, disha, lora, pissa, none"),
    ({"strategy": "ddp"}, r"--strategy 'ddp' is not one of deepspeed_stage_1"),
    ({"precision": "fp16"}, r"--precision 'fp16' is not one of bf16, fp32, tf32"),
    ({"data_type": "jsonl"}, r"--data_type 'jsonl' is not one of binidx, pad, sft"),
    ({"lr_schedule": "linear"}, r"--lr_schedule 'linear' is not one of cos, exp, constant"),
    ({"micro_bsz": 0}, r"--micro_bsz must be positive, got 0"),
    ({"warmup_steps": -1}, r"--warmup_steps must not be negative, got -1"),
    ({"lr_init": 0}, r"--lr_init and --lr_final must be positive"),
    ({"beta2": 1.0}, r"--beta1 and --beta2 must be in \[0, 1\)"),
    ({"adam_eps": 0}, r"--adam_eps must be positive"),
    ({"warmup_steps": 20}, r"--warmup_steps 20 leaves no steps of the 20 to train after the warmup; give a smaller"),
    ({"strategy": "deepspeed_stage_2_offload"}, r"offloads to the CPU from a GPU; on a CPU use deepspeed_stage_1/2/3"),
    ({"load_model": "missing.pth"}, r"--load_model missing.pth does not exist"),
    ({"load_model": "", "model": ""}, r"give --load_model BASE.pth \(to fine-tune\) or --model PRESET"),
    ({"model": "0.1b"}, r"--model 0.1b does not describe --load_model .*tiny-fp32.pth \(--model vs checkpoint: n_layer 12 vs 2"),
    ({"peft": "bat", "peft_r": 48}, r"bat: r=48 must divide both dimensions of blocks.0.att.receptance \(128 x 128\)"),
    ({"peft_targets": ["att.nothing"]}, r"att.nothing"),
    ({"data_file": ""}, r"--data_file PREFIX is required \(make one with scripts/make_data.sh\)"),
    ({"ctx_len": 4096}, r"fewer than one window of ctx_len \+ 1 = 4097: lower --ctx_len or add data"),
    ({"data_type": "sft"}, r"not written from prompt/response records"),
])
def test_bad_values_are_one_line_errors(good, change, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message) as e:
        validate(config_from_values({}, {**good, **change}))
    assert "\n" not in str(e.value)


def test_missing_data_file(good, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"binidx data .*nothing: .*nothing\.idx does not exist"):
        validate(config_from_values({}, {**good, "data_file": str(tmp_path / "nothing")}))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_gpus_without_a_gpu(good):
    with pytest.raises(ValueError, match=r"no CUDA device is visible"):
        validate(config_from_values({}, {**good, "gpus": 1}))


def test_train_py_reports_one_line_and_exit_code_2(good, capsys, tmp_path):
    argv = [f"--{k}={v}" for k, v in {**good, "micro_bsz": 0, "proj_dir": str(tmp_path / "run")}.items()]
    assert train_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == "train.py: error: --micro_bsz must be positive, got 0"
    assert not (tmp_path / "run").exists()


def test_short_runs_and_the_cpu_adapt_file_defaults(tmp_path):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"warmup_steps": 10, "precision": "bf16"}))
    cfg = parse_args(["--config", str(f), "--steps", "5", "--gpus", "0"])
    assert (cfg.warmup_steps, cfg.precision) == (0, "fp32")
    cfg = parse_args(["--config", str(f), "--steps", "50", "--gpus", "0", "--precision", "bf16"])
    assert (cfg.warmup_steps, cfg.precision) == (10, "bf16")                    # asked for: kept
    assert parse_args(["--config", str(f), "--gpus", "2"]).precision == "bf16"
    with pytest.raises(ValueError, match="--warmup_steps 10 leaves no steps of the 5"):
        validate(parse_args(["--steps", "5", "--warmup_steps", "10"]))
