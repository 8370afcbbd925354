"""src/plan/shapes.py: the meta model's bytes equal a real CPU model's; quantised weights as QuantScheme says."""

import pytest
import torch

from src.model import families
from src.peft.registry import PEFT_METHODS
from src.plan.shapes import meta_model, model_config, tensor_bytes
from src.quant.scheme import QuantScheme

from .conftest import peft_for, real_model, tiny


def test_bytes_match_a_real_model():
    config = tiny("x060")
    peft = peft_for("pissa")
    real = real_model(config, peft)
    frozen = sum(p.numel() * p.element_size() for p in real.parameters() if not p.requires_grad)
    frozen += sum(b.numel() * b.element_size() for b in real.buffers())
    trainable = sum(p.numel() * p.element_size() for p in real.parameters() if p.requires_grad)
    got = tensor_bytes(meta_model(config, peft, torch.float32))
    assert (got.frozen, got.trainable) == (frozen, trainable)


def test_bf16_keeps_adapters_fp32_and_quantises_linears():
    config = model_config("rwkv7-0.1b")
    model = meta_model(config, peft_for("bone", 64), torch.bfloat16)
    plain = tensor_bytes(model)
    assert plain.trainable_dtypes == (4,)
    nf4 = tensor_bytes(model, QuantScheme("nf4"))
    linears = [m for n, m in model.named_modules() if hasattr(m, "in_features") and n != "head"]
    saved = sum(m.in_features * m.out_features * 2 - QuantScheme("nf4").weight_bytes(m.out_features, m.in_features)
                for m in linears)
    assert plain.frozen - nf4.frozen == saved
    assert nf4.largest_linear == (config.dim_ffn, config.n_embd)



def quantised_bytes(family: str, kind: str, method: str) -> tuple[int, int]:
    """(the planner's frozen bytes, what a real quantised model with those adapters holds)."""
    from src.model.init import init_model
    from src.peft import apply_peft
    from src.quant import quantize_model
    config, scheme, peft = tiny(family), QuantScheme(kind, blocksize=32), peft_for(method)
    real = apply_peft(quantize_model(init_model(config, seed=0, nonzero=True), scheme), peft, verbose=False)
    frozen = sum(p.numel() * p.element_size() for p in real.parameters() if not p.requires_grad)
    frozen += sum(b.numel() * b.element_size() for b in real.buffers())         # codes, scales, code tables
    return tensor_bytes(meta_model(config, peft, torch.float32), scheme).frozen, frozen


def test_quantised_bytes_match_a_real_quantised_model():
    planned, held = quantised_bytes("x070", "nf4", "pissa")
    assert planned == held


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["nf4", "int8"])
@pytest.mark.parametrize("method", PEFT_METHODS)
@pytest.mark.parametrize("family", [f.name for f in families()])
def test_quantised_bytes_match_for_every_method_family_and_type(family, method, kind):
    planned, held = quantised_bytes(family, kind, method)
    assert planned == held
