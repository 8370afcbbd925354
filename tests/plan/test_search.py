"""src/plan/search.py: the largest ctx_len / micro_bsz and the suggestion."""

import pytest

from src.plan.plan import Planner
from src.plan.request import PlanRequest
from src.plan.search import plan_with_search


@pytest.mark.slow
def test_search_and_suggestion():
    planner = Planner()
    r = PlanRequest(model="rwkv7-0.1b", ctx_len=8192, grad_cp=False, gpu_mem=3.5)
    plan = plan_with_search(planner, r)
    assert not plan.fits and plan.suggestion
    assert 0 < plan.max_ctx_len < 8192
    assert planner.estimate(r.replace(ctx_len=plan.max_ctx_len)).fits
    assert not planner.estimate(r.replace(ctx_len=plan.max_ctx_len + 1)).fits
    fields = {}
    for flag in plan.suggestion.split("--")[1:]:
        name, value = flag.split()[:2]
        fields[name] = {"1": True}.get(value, int(value) if value.isdigit() else value)
    assert planner.estimate(r.replace(**fields)).fits
