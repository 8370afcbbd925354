"""src/peft/registry.py: one table of methods. A new method is one class and one entry, and then
apply_peft, PeftConfig, adapter files and merging into a plain .pth all work with it."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from src.model import RWKV6Config, load_rwkv6, save_rwkv6
from src.model import init_model
from src.peft import (ADAPTER_CLASSES, METHODS, AdapterLinear, PeftConfig, adapter_class, apply_peft, load_adapter,
                      read_adapter, save_adapter)
from src.peft.layer import wide
from src.peft.merge import merge_into_base
from tests.helpers import rel_err


class RowScaleLinear(AdapterLinear):
    """y = (1 + s) * (W x), ΔW = diag(s) W: a method written for this test only."""

    method = "rowscale"
    adapter_names = file_tensors = ("scale",)
    options = ()

    def __init__(self, base: nn.Linear, name: str = ""):
        super().__init__(base, name)
        self.scale = self.adapter_parameter(self.out_features)

    @classmethod
    def from_config(cls, base, config, name="", generator=None, init_weights=True):
        return cls(base, name=name)

    def adapted_forward(self, x):
        return F.linear(x, self.weight) * (1 + self.scale.to(x.dtype))

    def delta_weight(self):
        return wide(self.scale)[:, None] * wide(self.weight)


def test_the_registry_lists_every_method():
    assert METHODS == ("bone", "bat", "disha", "lora", "pissa") == tuple(ADAPTER_CLASSES)
    for method, cls in ADAPTER_CLASSES.items():
        assert cls.method == method and set(cls.adapter_names) <= set(cls.file_tensors)
    with pytest.raises(ValueError, match="unknown adapter method 'dora'; known: bone, bat, disha, lora, pissa"):
        adapter_class("dora")


def test_a_new_method_is_one_class_and_one_entry(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="PeftConfig.method must be one of"):
        PeftConfig("rowscale", 1)
    monkeypatch.setitem(ADAPTER_CLASSES, "rowscale", RowScaleLinear)
    config = PeftConfig("rowscale", 1)
    assert config.options() == {}
    base_path = tmp_path / "base.pth"
    save_rwkv6(init_model(RWKV6Config(n_layer=2, n_embd=128, vocab_size=300), seed=1, nonzero=True), base_path,
               dtype=torch.float32)
    model = apply_peft(load_rwkv6(base_path), config, verbose=False)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 2 * (6 * 128 + 448 + 128)
    with torch.no_grad():
        for p in (p for p in model.parameters() if p.requires_grad):
            p.normal_(0, 0.1)
    tokens = torch.arange(12)[None] * 11
    with torch.no_grad():
        expected = model(tokens)
    save_adapter(model, None, tmp_path / "adapter", step=1)
    assert read_adapter(tmp_path / "adapter").config == config.for_family(model) == model.peft_config
    with torch.no_grad():
        loaded = load_adapter(load_rwkv6(base_path), tmp_path / "adapter")(tokens)
        merge_into_base(base_path, read_adapter(tmp_path / "adapter"), tmp_path / "merged.pth")
        merged = load_rwkv6(tmp_path / "merged.pth")(tokens)
    assert torch.equal(loaded, expected)
    assert rel_err(merged, expected) < 1e-5
