"""src/train/config/train_config.py: TrainConfig's own rules."""

import dataclasses

from src.peft import PeftConfig
from src.train.config import TrainConfig


def test_the_seed_is_one_value():
    cfg = TrainConfig(seed=7)
    assert cfg.peft.seed == 7
    assert dataclasses.replace(cfg, seed=9).peft.seed == 9
    assert TrainConfig(seed=3, peft=PeftConfig("lora", 8, seed=1)).peft == PeftConfig("lora", 8, seed=3)
