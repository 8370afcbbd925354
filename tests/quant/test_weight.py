"""src/quant/weight.py, scheme.py: quantised storage, row ranges, bytes, the product and its gradient."""

import pytest
import torch
import torch.nn as nn

from src.quant import QUANT_TYPES, QuantLinear, QuantScheme, QuantizedWeight, quantize_model, quantized_linear

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def weight(out=96, inp=128, seed=0, dtype=torch.float32):
    return torch.randn(out, inp, generator=torch.Generator().manual_seed(seed)).to(dtype)


@pytest.mark.parametrize("kind", QUANT_TYPES)
def test_error_bytes_and_rows(kind):
    """Ŵ is near W (bitsandbytes' types: about 9% nf4, 12% fp4, 0.7% int8 relative on N(0,1) values); any
    range of rows dequantises alone, bit-identical to the whole; the bytes held are the scheme's formula."""
    w = weight()
    scheme = QuantScheme(kind)
    q = QuantizedWeight.from_float(w, scheme)
    full = q.dequantize(torch.float32)
    error = ((full - w).norm() / w.norm()).item()
    assert error < {"nf4": 0.11, "fp4": 0.14, "int8": 0.01}[kind]
    assert error > 1e-4                                         # it is quantised, not a copy
    for rows in (slice(0, 1), slice(8, 40), slice(95, 96), slice(0, 96)):
        assert torch.equal(q.dequantize(torch.float32, rows=rows), full[rows])
    assert q.nbytes() == scheme.weight_bytes(96, 128)
    assert q.nbytes() < w.numel() * (0.6 if scheme.four_bit else 1.1)
    again = QuantizedWeight.from_float(w, scheme)             # deterministic: an adapter names it, not holds it
    assert torch.equal(again.codes, q.codes) and torch.equal(again.absmax, q.absmax)


@pytest.mark.parametrize("kind", QUANT_TYPES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_product_and_input_gradient_equal_the_dequantised_layer(kind, dtype):
    q = QuantizedWeight.from_float(weight(), QuantScheme(kind))
    w_hat = q.dequantize(dtype)
    x = torch.randn(3, 5, 128, dtype=dtype, requires_grad=True)
    y = quantized_linear(x, q)
    g = torch.randn_like(y)
    (grad,) = torch.autograd.grad(y, x, g)
    assert y.dtype == dtype
    assert torch.equal(y, x @ w_hat.t()) or torch.allclose(y, x @ w_hat.t(), rtol=1e-2 if dtype == torch.bfloat16 else 1e-6)
    assert torch.allclose(grad, g @ w_hat, rtol=1e-2 if dtype == torch.bfloat16 else 1e-6, atol=1e-2 if dtype == torch.bfloat16 else 1e-6)


def test_the_product_saves_no_weight():
    q = QuantizedWeight.from_float(weight(512, 256), QuantScheme("nf4"))
    x = torch.randn(4, 256, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        quantized_linear(x, q).sum().backward()
    assert sum(saved) < 512 * 256 // 16


def test_casting_a_model_moves_but_never_casts_the_codes():
    model = nn.Sequential(nn.Linear(128, 64, bias=False), nn.LayerNorm(64))
    quantize_model(model, QuantScheme("nf4"))
    assert isinstance(model[0], QuantLinear)
    model.to(torch.bfloat16)
    q = model[0].weight
    assert q.codes.dtype == torch.uint8 and q.absmax.dtype == torch.float32 and q.dtype == torch.bfloat16
    assert model[1].weight.dtype == torch.bfloat16
    assert sorted(model.state_dict()) == ["0.weight.absmax", "0.weight.codes", "1.bias", "1.weight"]
    y = model(torch.randn(2, 128, dtype=torch.bfloat16))
    assert y.dtype == torch.bfloat16


def test_which_layers_the_scheme_quantises():
    model = nn.Module()
    model.blocks = nn.ModuleList([nn.ModuleDict({"key": nn.Linear(64, 64, bias=False)})])
    model.head = nn.Linear(64, 100, bias=False)
    quantize_model(model, QuantScheme("int8"))
    assert isinstance(model.blocks[0]["key"], QuantLinear) and isinstance(model.head, nn.Linear)
    quantize_model(model, QuantScheme("int8", head=True))
    assert isinstance(model.head, QuantLinear)


@pytest.mark.parametrize("kind,blocksize,shape,fits", [
    ("nf4", 64, (64, 96), False), ("nf4", 32, (64, 96), True), ("fp4", 128, (64, 192), False),
    ("int8", 64, (64, 96), True), ("nf4", 64, (65, 128), True)])
def test_shapes_a_type_can_take(kind, blocksize, shape, fits):
    scheme = QuantScheme(kind, blocksize=blocksize)
    if fits:
        scheme.check_shape("blocks.0.att.key", *shape)
        QuantizedWeight.from_float(torch.randn(*shape), scheme)
    else:
        with pytest.raises(ValueError, match=r"--quant .*: layer blocks.0.att.key \(\d+ x \d+\) cannot be quantised"):
            scheme.check_shape("blocks.0.att.key", *shape)


def test_bad_schemes_and_values_are_named():
    with pytest.raises(ValueError, match="--quant 'q3' is not a quantisation type"):
        QuantScheme("q3")
    with pytest.raises(ValueError, match="--quant_blocksize 48"):
        QuantScheme("nf4", blocksize=48)
    w = weight()
    w[3, 5] = float("nan")
    with pytest.raises(ValueError, match="holds NaN"):
        QuantizedWeight.from_float(w, QuantScheme("nf4"), "blocks.1.ffn.key")


def test_an_all_zero_row_stays_zero():
    w = weight(64, 64)
    w[7] = 0
    for kind in QUANT_TYPES:
        d = QuantizedWeight.from_float(w, QuantScheme(kind)).dequantize(torch.float32)
        assert torch.isfinite(d).all() and (d[7] == 0).all()
