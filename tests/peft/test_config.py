"""src/peft/config.py: PeftConfig validation and serialisation."""

import pytest

from src.peft import DEFAULT_TARGETS, PeftConfig


def test_defaults_and_round_trip():
    c = PeftConfig(method="bat", r=64, bat_index="in", train_parts=["time", "ln"])
    assert c.targets is None and c.for_family("x060").targets == DEFAULT_TARGETS and c.train_parts == ("time", "ln")
    assert PeftConfig.from_dict(c.to_dict()) == c
    assert c.options() == {"r": 64, "bat_index": "in"}
    assert PeftConfig(method="lora", r=8).options() == {"r": 8, "alpha": 8.0}


@pytest.mark.parametrize("kwargs,message", [
    (dict(method="dora", r=8), "method must be one of"),
    (dict(method="bone", r=0), "r must be a positive integer, got 0"),
    (dict(method="lora", r=8, alpha=0), "alpha must be a positive finite number"),
    (dict(method="lora", r=8, alpha=float("inf")), "alpha must be a positive finite number, got inf"),
    (dict(method="lora", r=8, dropout=1.5), "dropout must be in"),
    (dict(method="bat", r=8, bat_index="row"), "bat_index must be 'out' or 'in'"),
    (dict(method="bone", r=8, targets=()), "targets is empty"),
    (dict(method="bone", r=8, train_parts=("",)), "train_parts holds ''"),
])
def test_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PeftConfig(**kwargs)


def test_unknown_field():
    with pytest.raises(ValueError, match=r"unknown PeftConfig field\(s\) \['rank'\]"):
        PeftConfig.from_dict({"method": "bone", "r": 8, "rank": 8})


def test_a_string_is_one_pattern():
    c = PeftConfig(method="bone", r=8, targets="att.key", train_parts="ln")
    assert (c.targets, c.train_parts) == (("att.key",), ("ln",))
