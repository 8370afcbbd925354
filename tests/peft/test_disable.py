"""adapters_disabled: inside it, a model with any method's adapters (and tuned states) computes exactly the
base model loaded on its own; outside, exactly what it computed before; refused where no base is held apart."""

from __future__ import annotations

import copy

import pytest
import torch

from src.model import families, load_model
from src.peft import PeftConfig, adapters_disabled, apply_peft, has_adapters
from src.peft.state import STATE_PARAMETER
from tests.peft.helpers import method_matrix, randomize_adapters

FAMILIES = [f.name for f in families()]
# every method of the registry, each with its tuned states too where it makes sense, and state tuning alone
CASES = {**{name: cfg for name, cfg in method_matrix(r=16, low_rank=8, variants=False).items()},
         "bone+state": PeftConfig("bone", 16, train_state=True), "state": PeftConfig("state")}




def tokens(vocab: int) -> torch.Tensor:
    return torch.randint(0, vocab, (2, 12), generator=torch.Generator().manual_seed(0))


def adapted_model(path, config: PeftConfig):
    model = apply_peft(load_model(path).double(), config, verbose=False)
    randomize_adapters(model, scale=0.05, seed=3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(STATE_PARAMETER):
                p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(4), dtype=p.dtype) * 0.3)
    return model


@pytest.mark.parametrize("family, case", [
    pytest.param(family, case, marks=() if family == FAMILIES[-1] and case in ("pissa", "bone+state") else
                 pytest.mark.slow)
    for family in FAMILIES for case in CASES])
def test_disabled_is_the_base_and_leaving_restores_the_adapters(tiny_bases, family, case):
    model = adapted_model(tiny_bases[family], CASES[case])
    base = load_model(tiny_bases[family]).double()
    idx = tokens(base.config.vocab_size)
    with torch.no_grad():
        expected_base, before = base(idx), model(idx)
        with adapters_disabled(model) as same:
            assert same is model
            off = model(idx)
        after = model(idx)
    assert (before - expected_base).abs().max() > 1e-4             # the adapters do change the model
    assert torch.allclose(off, expected_base, rtol=0, atol=1e-10)
    assert torch.equal(after, before)
    assert sorted(n for n, _ in model.named_parameters()) == sorted(n for n, _ in
                                                                   copy.deepcopy(model).named_parameters())


@pytest.mark.parametrize("family", FAMILIES)
def test_gradients_do_not_reach_the_adapters_when_disabled_and_blocks_nest(tiny_bases, family):
    model = adapted_model(tiny_bases[family], CASES["bone+state"])
    idx = tokens(model.config.vocab_size)
    with adapters_disabled(model):
        with adapters_disabled(model):
            inner = model(idx)
        outer = model(idx)
        assert has_adapters(model)
    assert torch.equal(inner, outer)
    assert not outer.requires_grad                        # no trainable tensor took part: the reference is free
    # an exception inside the block leaves the adapters on
    with pytest.raises(RuntimeError):
        with adapters_disabled(model):
            raise RuntimeError("inside")
    with torch.no_grad():
        assert not torch.equal(model(idx), outer.detach())
    assert all(STATE_PARAMETER in block.att._parameters for block in model.blocks)


def test_refused_for_merged_layers_and_full_fine_tunes(tiny_bases):
    family = FAMILIES[0]
    model = adapted_model(tiny_bases[family], CASES["bone"])
    plain = load_model(tiny_bases[family])
    assert has_adapters(model) and not has_adapters(plain)
    with pytest.raises(ValueError, match="no adapters"):
        with adapters_disabled(plain):
            pass
    next(iter(m for m in model.modules() if hasattr(m, "merge") and hasattr(m, "disabled"))).merge()
    with pytest.raises(ValueError, match="merged into its weight"):
        with adapters_disabled(model):
            pass
