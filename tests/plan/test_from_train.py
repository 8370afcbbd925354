"""src/plan/from_train.py: a TrainConfig's plan, as train.py prints it."""

import pytest

from src.model import resolve_config
from src.peft import PeftConfig
from src.plan import estimate_for_train_config
from src.train.config.train_config import TrainConfig


@pytest.mark.slow
def test_train_config_plan():
    cfg = TrainConfig(ctx_len=1024, micro_bsz=2, grad_cp=True, head_chunk=256, devices=2,
                      strategy="deepspeed_stage_2", peft=PeftConfig(method="lora", r=8))
    plan = estimate_for_train_config(cfg, resolve_config("rwkv7-0.1b"))
    r = plan.request
    assert (r.peft, r.rank, r.gpus, r.precision, r.quant, r.micro_bsz) == ("lora", 8, 2, "bf16", "none", 2)
    assert plan.summary_line().startswith("memory plan:")


@pytest.mark.slow
def test_what_train_py_prints_on_the_cpu_and_the_quantisation_it_plans():
    from src.plan.from_train import announce
    base = dict(ctx_len=1024, micro_bsz=1, grad_cp=True, accelerator="cpu", peft=PeftConfig(method="bone", r=64))
    plain = estimate_for_train_config(TrainConfig(**base), resolve_config("rwkv7-1.5b"))
    quantised = estimate_for_train_config(TrainConfig(**base, quant="nf4"), resolve_config("rwkv7-1.5b"))
    assert quantised.request.quant == "nf4"
    assert quantised.components["frozen_weights"] < 0.45 * plain.components["frozen_weights"]
    lines = announce(TrainConfig(**base, quant="nf4"), resolve_config("rwkv7-0.1b"))
    assert len(lines) == 1 and lines[0].startswith("memory plan: estimated peak ") and "this run is on the CPU" in lines[0]
