"""src/train/strategy.py: the strategy names map to DeepSpeed configurations."""

import pytest
from lightning.pytorch.strategies import DeepSpeedStrategy

from src.train.strategy import CPUDeepSpeedStrategy, make_strategy


@pytest.mark.parametrize("name, stage, offload_optimizer, offload_params", [
    ("deepspeed_stage_1", 1, False, False), ("deepspeed_stage_2", 2, False, False),
    ("deepspeed_stage_2_offload", 2, True, False), ("deepspeed_stage_3", 3, False, False),
    ("deepspeed_stage_3_offload", 3, True, True)])
def test_strategies(name, stage, offload_optimizer, offload_params):
    gpu = make_strategy(name, "gpu", micro_bsz=4)
    assert type(gpu) is DeepSpeedStrategy
    zero = gpu.config["zero_optimization"]
    assert zero["stage"] == stage
    assert ("offload_optimizer" in zero) == offload_optimizer and ("offload_param" in zero) == offload_params
    assert gpu.exclude_frozen_parameters                  # checkpoints hold adapters + optimizer, not the base
    assert zero["memory_efficient_linear"] is False       # ZeRO-3 leaves torch.nn.functional.linear alone
    if not name.endswith("offload"):
        assert isinstance(make_strategy(name, "cpu", micro_bsz=1), CPUDeepSpeedStrategy)
