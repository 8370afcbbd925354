"""src/peft/disha.py: the general shard-sharing update, and Bone as its r1 = out case."""

import pytest
import torch
import torch.nn as nn

from src.peft import BoneLinear, DishaLinear
from tests.peft.helpers import fast_vs_explicit, float64_layer


@pytest.mark.parametrize("in_features,out_features,r1,r2", [(64, 224, 32, 16), (224, 64, 64, 32), (64, 64, 8, 8),
                                                            (64, 64, 64, 16)])
def test_fast_forward_equals_explicit_delta(in_features, out_features, r1, r2):
    layer, weight = float64_layer(lambda l: DishaLinear(l, r1, r2), in_features, out_features)
    for err in fast_vs_explicit(layer, weight):
        assert err < 1e-12


def test_delta_is_the_tiled_d():
    layer, _ = float64_layer(lambda l: DishaLinear(l, 3, 2), 4, 6)
    delta = layer.delta_weight()
    for o in range(6):
        for c in range(4):
            assert delta[o, c] == layer.disha[o % 3, c % 2]


def test_bone_is_disha_with_r1_equal_out():
    bone, _ = float64_layer(lambda l: BoneLinear(l, 16), 64, 96)
    disha, _ = float64_layer(lambda l: DishaLinear(l, 96, 16), 64, 96)
    with torch.no_grad():
        disha.disha.copy_(bone.bone.t())
    assert torch.equal(bone.delta_weight(), disha.delta_weight())


def test_divisibility_is_checked():
    with pytest.raises(ValueError, match="r1=5 must divide out=64 and r2=16 must divide in=64 for blocks.1.ffn.key"):
        DishaLinear(nn.Linear(64, 64, bias=False), 5, 16, name="blocks.1.ffn.key")
