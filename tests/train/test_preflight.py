"""src/train/preflight.py: the checks of files, shapes and data before a model is loaded, as one-line errors.
(Those of the run directory and of a resume run through train.py: test_resume.py, test_trainer.py.)"""

import pytest
import torch

from src.train.config import config_from_values, validate
from src.train.preflight import preflight


def check(values: dict):
    cfg = config_from_values({}, values)
    validate(cfg)
    return preflight(cfg)


def test_good_flags_pass(good, tiny_config):
    assert check(good).shape_signature() == tiny_config.shape_signature()
    assert check({**good, "load_model": "", "model": "tiny"}).n_layer == tiny_config.n_layer


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
