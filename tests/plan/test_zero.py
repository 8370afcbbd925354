"""src/plan/zero.py: ZeRO's placement; AdamW's state against a real optimizer step on the CPU."""

import pytest
import torch

from src.plan.zero import OPTIMIZER_BYTES_PER_VALUE, ZeroLayout


def test_adamw_state_is_two_fp32_moments_per_value():
    params = [torch.nn.Parameter(torch.randn(64, 32)), torch.nn.Parameter(torch.randn(16))]
    opt = torch.optim.AdamW(params)
    sum(p.sum() for p in params).backward()
    opt.step()
    moments = sum(t.numel() * t.element_size() for s in opt.state.values() for k, t in s.items() if k != "step")
    values = sum(p.numel() for p in params)
    assert moments == 8 * values
    assert OPTIMIZER_BYTES_PER_VALUE == 8 + 4          # and DeepSpeed's fp32 master copy


def test_stages_partition():
    one, two, three = (ZeroLayout(f"deepspeed_stage_{s}", 4) for s in (1, 2, 3))
    assert (one.gradients(400), two.gradients(400), three.trainable(400)) == (400, 100, 100)
    assert one.optimizer(10) == 30 and one.frozen(400) == 400
    assert ZeroLayout("deepspeed_stage_2_offload", 1).optimizer(10) == 0
    assert ZeroLayout("deepspeed_stage_3_offload", 2).frozen(400) == 0
    with pytest.raises(ValueError, match="--strategy"):
        ZeroLayout("ddp", 1)
