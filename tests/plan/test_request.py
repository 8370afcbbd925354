"""src/plan/request.py: bad values name their flag."""

import pytest

from src.plan.request import PlanRequest


@pytest.mark.parametrize("field,value,flag", [("ctx_len", -1, "--ctx_len"), ("peft", "x", "--peft"),
                                              ("quant", "nf3", "--quant"), ("gpu_mem", 0, "--gpu_mem"),
                                              ("chunk_ctx", -2, "--chunk_ctx"), ("precision", "fp8", "--precision")])
def test_bad_values(field, value, flag):
    with pytest.raises(ValueError, match=flag):
        PlanRequest(**{field: value})


def test_peft_configs():
    assert PlanRequest(peft="state").peft_config().method == "state"
    assert PlanRequest(peft="none").peft_config() is None
    assert PlanRequest(peft="lora", rank=8).peft_config().r == 8
    assert "--ctx_len 4096" in PlanRequest().flags()
