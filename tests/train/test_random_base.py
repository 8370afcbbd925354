"""src/train/random_base.py: a run's random initial model is reused only when it is this run's, and replaced
only with --overwrite."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from src.model import load_rwkv6
from src.model.init import init_model
from src.train.config import config_from_values
from src.train.random_base import (BASE, BASE_RECORD, base_path, check_random_base, is_this_runs_base,
                                   random_base_differences, save_random_base)


def config(proj, **changes):
    return config_from_values({}, {"model": "tiny", "proj_dir": str(proj), "seed": 7, **changes})


def test_a_saved_base_is_this_runs_for_the_same_shapes_and_seed(tmp_path, tiny_config):
    cfg = config(tmp_path)
    assert random_base_differences(tmp_path, tiny_config, 7, resuming=False) is None
    assert not is_this_runs_base(cfg, tiny_config)
    model = init_model(tiny_config, seed=7, dtype=torch.float32)
    save_random_base(model, cfg, tiny_config, torch.float32)
    assert torch.equal(load_rwkv6(tmp_path / BASE).emb.weight, model.emb.weight)
    assert json.loads((tmp_path / BASE_RECORD).read_text())["seed"] == 7
    assert is_this_runs_base(cfg, tiny_config) and base_path(cfg) == tmp_path / BASE
    assert random_base_differences(tmp_path, tiny_config, 8, resuming=False) == ["seed 7 there, 8 here"]
    assert base_path(config(tmp_path, load_model="other.pth")) == Path("other.pth")     # --load_model: that file


def test_another_runs_base_is_replaced_only_with_overwrite(tmp_path, tiny_config):
    save_random_base(init_model(tiny_config, seed=7, dtype=torch.float32), config(tmp_path), tiny_config,
                     torch.float32)
    check_random_base(config(tmp_path), tiny_config)
    with pytest.raises(ValueError, match=r"base.pth was made for another run \(seed 7 there, 8 here\): choose "
                                         r"another --proj_dir, or pass --overwrite to make a new one"):
        check_random_base(config(tmp_path, seed=8), tiny_config)
    check_random_base(config(tmp_path, seed=8, overwrite=True), tiny_config)
    with pytest.raises(ValueError, match=r"made for another run \(seed 7 there, 8 here\): choose another --proj_dir$"):
        check_random_base(config(tmp_path, seed=8, overwrite=True, resume="latest"), tiny_config)


def test_a_base_without_its_record(tmp_path, tiny_config, tiny_fp32_checkpoint):
    shutil.copy(tiny_fp32_checkpoint, tmp_path / BASE)
    assert random_base_differences(tmp_path, tiny_config, 7, resuming=True) == []     # written before base.json was
    assert random_base_differences(tmp_path, tiny_config, 7, resuming=False) == [
        "seed unknown (no readable base.json) there, 7 here"]
