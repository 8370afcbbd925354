"""src/peft/bone.py: Bone's fast forward against its explicit W + ΔW."""

import pytest
import torch
import torch.nn as nn

from src.peft import BoneLinear
from tests.peft.helpers import fast_vs_explicit, float64_layer

SHAPES = [(64, 224), (224, 64), (64, 64), (72, 64), (100, 30)]       # C->3.5C, 3.5C->C, C->C, in % r != 0


@pytest.mark.parametrize("in_features,out_features", SHAPES)
def test_fast_forward_equals_explicit_delta(in_features, out_features):
    layer, weight = float64_layer(lambda l: BoneLinear(l, 16), in_features, out_features)
    for err in fast_vs_explicit(layer, weight):
        assert err < 1e-12


def test_delta_layout():
    """ΔW[o, c] = bone[c mod r, o], written out with loops."""
    layer, _ = float64_layer(lambda l: BoneLinear(l, 4), 10, 6)
    delta = layer.delta_weight()
    for o in range(6):
        for c in range(10):
            assert delta[o, c] == layer.bone[c % 4, o]


def test_parameter_contract():
    layer = BoneLinear(nn.Linear(64, 224, bias=False), 16)
    assert layer.bone.shape == (16, 224) and layer.bone.dtype == torch.float32
    assert layer.bone.abs().sum() == 0 and layer.bone.requires_grad
    assert not layer.weight.requires_grad
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bone"]


def test_bf16_base_fp32_adapter():
    linear = nn.Linear(64, 64, bias=False).to(torch.bfloat16)
    layer = BoneLinear(linear, 16)
    with torch.no_grad():
        layer.bone.normal_()
    x = torch.randn(2, 3, 64, dtype=torch.bfloat16)
    y = layer(x)
    y.float().sum().backward()
    assert y.dtype == torch.bfloat16 and layer.bone.grad.dtype == torch.float32


def test_merge_unmerge():
    layer, weight = float64_layer(lambda l: BoneLinear(l, 16), 64, 96)
    x = torch.randn(4, 64, dtype=torch.float64)
    before = layer(x)
    layer.merge()
    assert layer.merged and torch.allclose(layer(x), before, atol=1e-12)
    layer.unmerge()
    assert torch.allclose(layer.weight, weight, atol=1e-12)


@pytest.mark.parametrize("r,message", [(0, "r must be a positive integer"), (100, "r=100 is larger than in_features=64")])
def test_bad_rank(r, message):
    with pytest.raises(ValueError, match=message):
        BoneLinear(nn.Linear(64, 64, bias=False), r, name="blocks.0.att.key")


def test_bias_refused():
    with pytest.raises(ValueError, match="has a bias"):
        BoneLinear(nn.Linear(8, 8), 4)
