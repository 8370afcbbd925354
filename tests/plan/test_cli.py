"""src/plan/cli.py (scripts/plan.sh): text, JSON, and bad input as one line with exit status 2."""

import json
import subprocess

import pytest

from src.plan.cli import main, parser
from src.utils.paths import REPO_ROOT


@pytest.mark.slow
def test_json(capsys):
    assert main(["--model", "rwkv7-0.1b", "--ctx_len", "512", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"peak_bytes", "fits", "components", "max_ctx_len", "max_micro_bsz", "suggestion"} <= set(out)
    assert set(out["components"]) >= {"frozen_weights", "trainable", "gradients", "optimizer", "activations", "head",
                                      "workspace", "overhead"}


@pytest.mark.parametrize("argv,flag", [(["--model", "nope"], "--model nope"), (["--ctx_len", "-4"], "--ctx_len -4"),
                                       (["--model", "missing.pth"], "--model missing.pth"),
                                       (["--model", "missing.json"], "--model missing.json"),
                                       (["--gpu_mem", "0"], "--gpu_mem 0")])
def test_bad_input(argv, flag, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and flag in err and "Traceback" not in err


def test_every_flag_has_help_and_default():
    for action in parser()._actions:
        if action.dest != "help":
            assert action.help and "default" in action.help, action.dest
    with pytest.raises(SystemExit) as e:
        main(["--quant", "nf3"])
    assert e.value.code == 2


@pytest.mark.slow
def test_a_checkpoint_and_a_config_file(tiny_fp32_checkpoint, tmp_path, capsys):
    """--model takes a .pth (shapes read memory-mapped) and a config .json."""
    assert main(["--model", str(tiny_fp32_checkpoint), "--ctx_len", "256", "--json"]) == 0
    from_file = json.loads(capsys.readouterr().out)
    config = tmp_path / "tiny.json"
    config.write_text((REPO_ROOT / "configs" / "model" / "rwkv6-tiny.json").read_text())
    assert main(["--model", str(config), "--ctx_len", "256", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["components"] == from_file["components"]


@pytest.mark.slow
def test_the_script():
    done = subprocess.run(["bash", str(REPO_ROOT / "scripts" / "plan.sh"), "--model", "rwkv7-0.1b", "--ctx_len", "512"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "fits in 24 GiB" in done.stdout
