"""Every adapter method on a quantised base: its quantised forward and backward equal the same layer on the
dequantised weight (float64), Bat never keeps a dequantised weight for the backward, merging is exact."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from src.peft import make_adapter
from src.quant import QUANT_TYPES, QuantLinear, QuantScheme
from tests.peft.helpers import method_matrix

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CONFIGS = {**method_matrix(r=16, low_rank=8),
           "bat_materialize": method_matrix(r=16)["bat"].replace(bat_materialize=True),
           "bat_in_materialize": method_matrix(r=16)["bat_in"].replace(bat_materialize=True)}
ADAPTER_CONFIGS = {k: v for k, v in CONFIGS.items() if v.method != "state"}


def quantized_layer(config, kind, in_features=128, out_features=192, seed=0):
    torch.manual_seed(seed)
    linear = nn.Linear(in_features, out_features, bias=False)
    base = QuantLinear.from_linear(linear, QuantScheme(kind))
    layer = make_adapter(base, config, "blocks.0.ffn.key", generator=torch.Generator().manual_seed(seed)).double()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name in layer.adapter_names:
            p = getattr(layer, name)
            p.add_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.3)
    return layer


@pytest.mark.parametrize("kind", QUANT_TYPES)
@pytest.mark.parametrize("name", ADAPTER_CONFIGS)
def test_quantised_forward_and_backward_equal_the_dequantised_layer(name, kind):
    """y = x (Ŵ + ΔW)^T with Ŵ the held weight dequantised and ΔW what merging adds to it (for PiSSA,
    relative to its quantised residual): output, input gradient and every adapter gradient, float64."""
    layer = quantized_layer(ADAPTER_CONFIGS[name], kind)
    assert layer.quantized
    held = layer.base_weight().double()
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 5, layer.in_features, generator=g, dtype=torch.float64, requires_grad=True)
    params = [getattr(layer, n) for n in layer.adapter_names]
    y = layer(x)
    ref = F.linear(x, held + layer.merge_update())
    cot = torch.randn(y.shape, generator=g, dtype=torch.float64)
    got = torch.autograd.grad((y * cot).sum(), [x, *params])
    want = torch.autograd.grad((ref * cot).sum(), [x, *params])
    assert ((y - ref).abs().max() / ref.abs().max()).item() < 1e-12
    for a, b in zip(got, want):
        assert ((a - b).abs().max() / b.abs().max()).item() < 1e-11


@pytest.mark.parametrize("kind", ["nf4", "int8"])
def test_pissa_starts_from_the_dequantised_weight_with_its_residual_quantised(kind):
    """At step 0 the layer computes Ŵ (the base as quantised), up to the residual's own quantisation."""
    config = ADAPTER_CONFIGS["pissa"]
    torch.manual_seed(0)
    linear = nn.Linear(128, 192, bias=False)
    base = QuantLinear.from_linear(linear, QuantScheme(kind))
    w_hat = base.weight.dequantize(torch.float32)
    layer = make_adapter(base, config, "blocks.0.att.key", generator=torch.Generator().manual_seed(0))
    x = torch.randn(4, 128)
    start = layer(x)
    quantized_again = ((start - x @ w_hat.t()).norm() / (x @ w_hat.t()).norm()).item()
    assert quantized_again < {"nf4": 0.12, "int8": 0.01}[kind]
    assert torch.count_nonzero(layer.init_lora_A) > 0


@pytest.mark.parametrize("name", ["bat", "bat_in", "bat_materialize", "bat_in_materialize"])
def test_bat_on_a_quantised_base_keeps_no_dequantised_weight(name):
    """Saved for the backward of 4 Bat layers of 256 x 256 on nf4: a few activations, never a (out, in)."""
    config = ADAPTER_CONFIGS[name].replace(r=64)
    layers = []
    for seed in range(4):
        torch.manual_seed(seed)
        layer = make_adapter(QuantLinear.from_linear(nn.Linear(256, 256, bias=False), QuantScheme("nf4")),
                             config, f"blocks.{seed}.att.key")
        with torch.no_grad():
            layer.bat.normal_(0, 0.01)
        layers.append(layer)
    saved = []
    parameters = {p.data_ptr() for layer in layers for p in layer.parameters()}

    def pack(t):
        if t.data_ptr() not in parameters:
            saved.append(t.numel())
        return t

    x = torch.randn(8, 256, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = x
        for layer in layers:
            y = layer(y)
    y.sum().backward()
    assert max(saved) < 256 * 256, f"a tensor of {max(saved)} values was kept"
    assert sum(saved) < 0.1 * 256 * 256 * 4
    assert all(layer.bat.grad is not None and layer.bat.grad.abs().sum() > 0 for layer in layers)


@pytest.mark.parametrize("name", ["bone", "lora", "bat", "pissa"])
def test_merge_gives_the_function_trained_and_unmerge_the_quantised_weight_back(name):
    layer = quantized_layer(ADAPTER_CONFIGS[name], "nf4").float()
    x = torch.randn(4, layer.in_features)
    codes = layer.weight.codes.clone()
    before = layer(x)
    layer.merge()
    assert not layer.quantized and torch.allclose(layer(x), before, atol=1e-5)
    layer.unmerge()
    assert layer.quantized and torch.allclose(layer(x), before, atol=1e-5)
    if name != "pissa":                                  # the residual is quantised again from the same values
        assert torch.equal(layer.weight.codes, codes)
