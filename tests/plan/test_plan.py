"""src/plan/plan.py: components, their sum, fitting, the one-line summary."""

import pytest

from src.plan.plan import COMPONENTS, Planner
from src.plan.request import PlanRequest


@pytest.mark.slow
def test_components_and_summary():
    planner = Planner()
    plan = planner.estimate(PlanRequest(model="rwkv7-0.1b", ctx_len=1024))
    assert set(plan.components) == set(COMPONENTS) and all(v >= 0 for v in plan.components.values())
    assert plan.peak_bytes == sum(plan.components.values()) and plan.fits
    assert plan.summary_line().startswith("memory plan: estimated peak ") and "fits in 24 GiB" in plan.summary_line()
    small = planner.estimate(PlanRequest(model="rwkv7-0.1b", ctx_len=1024, gpu_mem=0.5))
    assert not small.fits and "does NOT fit" in small.summary_line()
    quant = planner.estimate(PlanRequest(model="rwkv7-0.1b", ctx_len=1024, quant="nf4"))
    assert quant.components["frozen_weights"] < plan.components["frozen_weights"]
    more = planner.estimate(PlanRequest(model="rwkv7-0.1b", ctx_len=2048))
    assert more.components["activations"] > plan.components["activations"]
