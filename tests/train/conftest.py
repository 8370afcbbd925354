"""Fixtures of the training tests."""

import pytest


@pytest.fixture
def good(tiny_fp32_checkpoint, sample_data):
    """Flags that pass: the tiny checkpoint and the sample data on the CPU."""
    return {"load_model": str(tiny_fp32_checkpoint), "data_file": str(sample_data), "ctx_len": 64, "gpus": 0,
            "strategy": "deepspeed_stage_2", "peft": "bone", "peft_r": 16, "epoch_steps": 20}
