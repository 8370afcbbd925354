"""src/peft/bat.py: both layouts against explicit block loops, against W + ΔW, and their memory."""

import pytest
import torch
import torch.nn as nn

from src.peft import BatLinear
from tests.peft.helpers import fast_vs_explicit, float64_layer

SHAPES = [(64, 224), (224, 64), (64, 64)]


@pytest.mark.parametrize("index", ["out", "in"])
@pytest.mark.parametrize("in_features,out_features", SHAPES)
@pytest.mark.parametrize("materialize", [False, True])
def test_fast_forward_equals_explicit_delta(index, in_features, out_features, materialize):
    layer, weight = float64_layer(lambda l: BatLinear(l, 16, index=index, materialize=materialize),
                                  in_features, out_features)
    for err in fast_vs_explicit(layer, weight):
        assert err < 1e-12


@pytest.mark.parametrize("index", ["out", "in"])
def test_delta_layout_by_block_loops(index):
    """ΔW_ab = W_ab D + D with D = D_a (index="out") or D_b (index="in"), block by block."""
    r = 4
    layer, weight = float64_layer(lambda l: BatLinear(l, r, index=index), 12, 8)
    delta = layer.delta_weight()
    for a in range(8 // r):
        for b in range(12 // r):
            w_ab = weight[a * r:(a + 1) * r, b * r:(b + 1) * r]
            d = layer.bat[a] if index == "out" else layer.bat[b]
            assert torch.allclose(delta[a * r:(a + 1) * r, b * r:(b + 1) * r], w_ab @ d + d, atol=1e-14)


def test_parameter_shapes():
    assert BatLinear(nn.Linear(64, 224, bias=False), 16, "out").bat.shape == (14, 16, 16)
    assert BatLinear(nn.Linear(64, 224, bias=False), 16, "in").bat.shape == (4, 16, 16)


@pytest.mark.parametrize("index", ["out", "in"])
def test_merge_unmerge_inverts(index):
    layer, weight = float64_layer(lambda l: BatLinear(l, 16, index=index), 64, 96)
    x = torch.randn(4, 64, dtype=torch.float64)
    before = layer(x)
    layer.merge()
    assert torch.allclose(layer(x), before, atol=1e-10)
    layer.unmerge()
    assert torch.allclose(layer.weight, weight, atol=1e-10)


def test_rank_must_divide_both_dimensions():
    with pytest.raises(ValueError, match=r"bat: r=48 must divide both dimensions of blocks.2.ffn.value "
                                         r"\(64 x 224\) \(in % r = 32, out % r = 16\)"):
        BatLinear(nn.Linear(224, 64, bias=False), 48, name="blocks.2.ffn.value")


def saved_activation_bytes(layers, x):
    """Bytes autograd keeps for the backward of a stack of layers, parameters excluded."""
    param_ptrs = {p.data_ptr() for layer in layers for p in layer.parameters()}
    total = []

    def pack(t):
        if t.data_ptr() not in param_ptrs:
            total.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = x
        for layer in layers:
            y = layer(y)
    y.sum().backward()
    return sum(total)


@pytest.mark.parametrize("index", ["out", "in"])
def test_no_weight_sized_tensor_is_kept_for_backward(index):
    """8 tokens through 4 Bat layers of 256 x 256: ours saves a few activations per layer,
    the materialising way saves W + ΔW (a whole weight) in every layer."""
    def stack(materialize):
        torch.manual_seed(0)
        layers = [BatLinear(nn.Linear(256, 256, bias=False), 64, index=index, materialize=materialize) for _ in range(4)]
        for layer in layers:
            with torch.no_grad():
                layer.bat.normal_(0, 0.01)
        return layers

    x = torch.randn(8, 256, requires_grad=True)
    weight_bytes = 256 * 256 * 4
    ours = saved_activation_bytes(stack(False), x)
    theirs = saved_activation_bytes(stack(True), x)
    assert ours < 0.1 * weight_bytes * 4, f"{ours} bytes saved by our Bat"
    assert theirs >= weight_bytes * 4, f"the materialising reference saved only {theirs} bytes"


def test_index_out_in_several_chunks_of_rows(monkeypatch):
    """Bat(out) builds W_ab (I + D_a) a chunk of output rows at a time; uneven chunks change nothing."""
    import src.peft.bat as bat_module
    monkeypatch.setattr(bat_module, "CHUNK_ELEMENTS", 64 * 64)            # 64 rows of a 64-wide input per chunk
    assert [(c.start, c.stop) for c in bat_module.row_chunks(288, 64, 32)] == [(0, 64), (64, 128), (128, 192),
                                                                             (192, 256), (256, 288)]
    layer, weight = float64_layer(lambda l: BatLinear(l, 32, index="out"), 64, 288)
    assert max(fast_vs_explicit(layer, weight, batch_shape=(2, 3))) < 1e-12
