"""src/peft/lora.py: LoRA, PiSSA's start point and its randomised SVD."""

import pytest
import torch
import torch.nn as nn

from src.peft import LoraLinear, PissaLinear
from src.peft.lora import DropoutDraw, positional_dropout, randomized_svd
from tests.peft.helpers import fast_vs_explicit, float64_layer

SHAPES = [(64, 224), (224, 64), (64, 64), (72, 40)]


@pytest.mark.parametrize("layer_class", [LoraLinear, PissaLinear], ids=["lora", "pissa"])
@pytest.mark.parametrize("in_features,out_features", SHAPES)
def test_fast_forward_equals_explicit_delta(layer_class, in_features, out_features):
    # for PiSSA, W + ΔW with W the ORIGINAL weight: the layer holds the residual
    layer, weight = float64_layer(lambda l: layer_class(l, 8, alpha=16), in_features, out_features)
    for err in fast_vs_explicit(layer, weight):
        assert err < 1e-12


def test_lora_init():
    layer = LoraLinear(nn.Linear(64, 96, bias=False), 8, alpha=32, generator=torch.Generator().manual_seed(0))
    assert layer.lora_A.shape == (8, 64) and layer.lora_B.shape == (96, 8)
    assert layer.lora_B.abs().sum() == 0 and layer.lora_A.abs().sum() > 0
    assert layer.scale == 4.0 and layer.delta_weight().abs().sum() == 0
    assert layer.lora_A.abs().max() <= 1 / 8          # Kaiming-uniform(a=sqrt(5)) bound: 1/sqrt(in)


def test_pissa_start_leaves_the_layer_unchanged():
    torch.manual_seed(0)
    linear = nn.Linear(96, 64, bias=False).double()
    original = linear.weight.detach().clone()
    layer = PissaLinear(linear, 8, alpha=16, niter=6).double()
    x = torch.randn(5, 96, dtype=torch.float64)
    assert torch.allclose(layer(x), x @ original.T, atol=1e-12)
    assert layer.delta_weight().abs().max() < 1e-12
    # the adapter starts on the top singular directions (randomised SVD: close, not exact)
    top = torch.linalg.svdvals(original)[:8]
    start = torch.linalg.svdvals(layer.scale * layer.init_lora_B @ layer.init_lora_A)[:8]
    assert torch.allclose(start, top, rtol=0.05)


def test_randomized_svd_matches_exact_and_is_seeded():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(200, 120, generator=g) @ torch.diag(torch.logspace(0, -3, 120)) @ torch.randn(120, 120, generator=g)
    u, s, vh = randomized_svd(a, 10, niter=4, generator=torch.Generator().manual_seed(1))
    exact = torch.linalg.svdvals(a)[:10]
    assert torch.allclose(s, exact, rtol=1e-3)
    assert torch.allclose(u.T @ u, torch.eye(10), atol=1e-4)
    u2, s2, _ = randomized_svd(a, 10, niter=4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(u, u2) and torch.equal(s, s2)


def test_pissa_merge_is_relative_to_the_original():
    layer, original = float64_layer(lambda l: PissaLinear(l, 8, alpha=8), 64, 64)
    x = torch.randn(3, 64, dtype=torch.float64)
    expected = x @ (original + layer.delta_weight()).T
    layer.merge()
    assert torch.allclose(layer.weight, original + layer.delta_weight(), atol=1e-12)
    assert torch.allclose(layer(x), expected, atol=1e-12)


def test_dropout_only_on_the_adapter_path():
    layer = LoraLinear(nn.Linear(32, 32, bias=False), 4, alpha=8, dropout=0.5).double()
    with torch.no_grad():
        layer.lora_B.normal_()                             # B = 0 at init would hide the adapter path
    x = torch.randn(2, 32, dtype=torch.float64)
    layer.train()
    torch.manual_seed(0)
    y = layer(x)
    torch.manual_seed(0)
    kept = nn.Dropout(0.5)(torch.ones_like(x))             # the same mask: 0 or 1 / (1 - p)
    expected = x @ layer.weight.T + 2.0 * (kept * x) @ layer.lora_A.T @ layer.lora_B.T
    assert torch.allclose(y, expected, atol=1e-12)
    assert not torch.allclose(y, layer.eval()(x))          # dropout acted in training ...
    assert torch.allclose(layer(x), x @ (layer.weight + layer.delta_weight()).T, atol=1e-12)   # ... not in eval


@pytest.mark.parametrize("layer_class", [LoraLinear, PissaLinear])
def test_dropout_with_a_draw_keys_the_masks_by_token_position(layer_class):
    """With a DropoutDraw attached, the adapter path sees positional_dropout's masks (0 or 1 / (1 - p)),
    those of the token's position in the sample: the last 5 tokens run alone at offset 3 get the masks
    they had in the whole 8-token piece."""
    layer = layer_class(nn.Linear(32, 32, bias=False), 4, alpha=8, dropout=0.5, name="blocks.0.att.key").double()
    with torch.no_grad():
        layer.lora_B.normal_()
    draw = DropoutDraw(seed=3, step=7)
    assert DropoutDraw.attach(layer, draw) == 1
    x = torch.randn(2, 8, 32, dtype=torch.float64)
    layer.train()
    y = layer(x)
    kept = positional_dropout(torch.ones_like(x), 0.5, draw.key(layer.layer_key), 0)
    assert set(kept.unique().tolist()) == {0.0, 2.0}
    expected = x @ layer.weight.T + 2.0 * (kept * x) @ layer.lora_A.T @ layer.lora_B.T
    assert torch.allclose(y, expected, atol=1e-12)
    draw.offset = 3
    assert torch.allclose(layer(x[:, 3:]), y[:, 3:], atol=1e-12)
    draw.offset = 0
    assert not torch.allclose(layer(x[:, 3:]), y[:, 3:])                  # the masks of positions 0..4 differ
    assert torch.allclose(layer.eval()(x), x @ (layer.weight + layer.merge_update()).T, atol=1e-12)   # no dropout


def mask_of(p=0.5, key=1, offset=0, shape=(4, 64, 256)):
    return positional_dropout(torch.ones(shape), p, key, offset) > 0


@pytest.mark.parametrize("p", [0.05, 0.3, 0.5, 0.9])
def test_positional_dropout_drops_p_and_keeps_the_expectation(p):
    """Over 65536 draws the dropped fraction is p within 5 standard deviations, and the mean of
    dropout(x) / x (0 or 1 / (1 - p)) is 1 within 5 of its standard deviations: E[output] = the input."""
    n = 4 * 64 * 256
    x = torch.rand(4, 64, 256, dtype=torch.float64) + 0.5
    out = positional_dropout(x, p, key=12345, offset=100)
    dropped = (out == 0).double().mean().item()
    assert abs(dropped - p) < 5 * (p * (1 - p) / n) ** 0.5, dropped
    kept = out != 0
    assert torch.allclose(out[kept], x[kept] / (1 - p), rtol=1e-12, atol=0)
    ratio = (out / x).mean().item()
    assert abs(ratio - 1) < 5 * (p / (1 - p) / n) ** 0.5, ratio


@pytest.mark.parametrize("other", [dict(key=2), dict(offset=64)])
def test_masks_differ_across_steps_layers_and_positions_and_are_independent(other):
    """Another key (another step, layer or seed) or other positions: masks that agree on about
    p^2 + (1 - p)^2 of their elements, as independent ones do; the same key and positions: the same mask."""
    base = mask_of()
    assert torch.equal(base, mask_of())
    agree = (base == mask_of(**other)).double().mean().item()
    n = base.numel()
    assert abs(agree - 0.5) < 5 * (0.25 / n) ** 0.5, agree
    by_position = (base[:, 1:] == base[:, :-1]).double().mean().item()        # neighbouring tokens
    by_row = (base[1:] == base[:-1]).double().mean().item()                     # the batch's samples
    by_feature = (base[..., 1:] == base[..., :-1]).double().mean().item()
    for share in (by_position, by_row, by_feature):
        assert abs(share - 0.5) < 0.01, (by_position, by_row, by_feature)


def test_draw_keys_differ_by_seed_stream_step_and_layer():
    keys = {DropoutDraw(seed, stream, step).key(layer)
            for seed in (0, 1) for stream in (0, 1) for step in (0, 1, 2) for layer in (0, 1, 2)}
    assert len(keys) == 2 * 2 * 3 * 3
    assert DropoutDraw(1, 0, 2, offset=7).key(5) == DropoutDraw(1, 0, 2).key(5)     # the offset is not in the key


@pytest.mark.parametrize("kwargs,message", [(dict(r=0), "r must be a positive integer"),
                                            (dict(r=40), "r=40 exceeds min\\(in, out\\) = 32"),
                                            (dict(r=4, dropout=1.0), "dropout must be in")])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LoraLinear(nn.Linear(32, 48, bias=False), **kwargs)
