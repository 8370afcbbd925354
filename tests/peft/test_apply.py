"""src/peft/apply.py: putting adapters into RWKV6, what trains, counts, merge_and_unload."""

import copy

import pytest
import torch
import torch.nn.functional as F

from src.model import RWKV6Config
from src.model import init_model
from src.model import RWKV6
from src.peft import (ADAPTER_CLASSES, BatLinear, BoneLinear, LoraLinear, PeftConfig, adapter_layers, apply_peft, count_parameters,
                      merge_and_unload)
from tests.helpers import rel_err
from tests.peft.helpers import method_matrix, randomize_adapters

SMALL = RWKV6Config(n_layer=2, n_embd=128, vocab_size=300)          # ffn 448
MATRIX = method_matrix()
ALL_METHODS, IDS = list(MATRIX.values()), list(MATRIX)


@pytest.fixture(scope="module")
def small_model():
    return init_model(SMALL, seed=1, nonzero=True)


def tokens(n=12, vocab=300):
    return torch.randint(0, vocab, (2, n), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("config", [PeftConfig("lora", 32), PeftConfig("bone", 64), PeftConfig("bat", 64),
                                    PeftConfig("bat", 64, bat_index="in")], ids=["lora32", "bone64", "bat64out", "bat64in"])
def test_3b_trains_exactly_the_papers_count(config, capsys):
    with torch.device("meta"):
        model = RWKV6(RWKV6Config.preset("3b"))
    apply_peft(model, config)
    assert count_parameters(model)[0] == 55_050_240
    assert "trainable params: 55,050,240 || all params: 3,154,913,280" in capsys.readouterr().out


def test_default_targets_are_the_eight_linears(small_model):
    model = apply_peft(copy.deepcopy(small_model), PeftConfig("bone", 16), verbose=False)
    names = sorted(adapter_layers(model))
    assert len(names) == 16
    assert names[:8] == sorted(f"blocks.0.{n}" for n in ("att.receptance", "att.key", "att.value", "att.gate",
                                                           "att.output", "ffn.key", "ffn.receptance", "ffn.value"))
    assert not isinstance(model.head, BoneLinear)
    # the state dict keeps every RWKV-LM key and adds the adapters
    keys = set(model.state_dict())
    assert "blocks.1.att.key.weight" in keys and "blocks.1.att.key.bone" in keys


def test_patterns_select_fewer(small_model):
    model = apply_peft(copy.deepcopy(small_model), PeftConfig("lora", 4, targets=("att.key", "blocks.1.ffn.*")),
                       verbose=False)
    assert sorted(adapter_layers(model)) == ["blocks.0.att.key", "blocks.1.att.key", "blocks.1.ffn.key",
                                             "blocks.1.ffn.receptance", "blocks.1.ffn.value"]
    assert all(isinstance(m, LoraLinear) for m in adapter_layers(model).values())


def test_a_pattern_that_matches_nothing_is_an_error(small_model):
    with pytest.raises(ValueError, match="target 'att.kye' matches no linear layer"):
        apply_peft(copy.deepcopy(small_model), PeftConfig("bone", 16, targets=("att.kye",)), verbose=False)


def test_bat_rank_that_does_not_divide_names_the_layer(small_model):
    with pytest.raises(ValueError, match=r"r=48 must divide both dimensions of blocks.0.att.receptance \(128 x 128\)"):
        apply_peft(copy.deepcopy(small_model), PeftConfig("bat", 48), verbose=False)


@pytest.mark.parametrize("config", ALL_METHODS, ids=IDS)
def test_zero_initialised_adapters_leave_the_logits_unchanged(small_model, config):
    idx = tokens()
    with torch.no_grad():
        before = small_model(idx)
        after = apply_peft(copy.deepcopy(small_model), config, verbose=False)(idx)
    assert rel_err(after, before) < 1e-5


@pytest.mark.parametrize("config", ALL_METHODS, ids=IDS)
def test_gradients_reach_only_adapters_and_train_parts(small_model, config):
    model = apply_peft(copy.deepcopy(small_model), config.replace(train_parts=("time_decay", "ln_out")), verbose=False)
    randomize_adapters(model)
    idx = tokens()
    loss = F.cross_entropy(model(idx[:, :-1]).flatten(0, 1), idx[:, 1:].flatten())
    loss.backward()
    for name, p in model.named_parameters():
        adapter = name.rpartition(".")[2] in {n for cls in ADAPTER_CLASSES.values() for n in cls.adapter_names}
        extra = "time_decay" in name or "ln_out" in name
        if adapter or extra:
            assert p.requires_grad and p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert not p.requires_grad and p.grad is None, name


def test_train_parts_rules(small_model):
    model = apply_peft(copy.deepcopy(small_model), PeftConfig("bone", 16, train_parts=("ln", "blocks.0.att.time_faaaa")),
                       verbose=False)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad and not n.endswith(".bone")}
    assert "blocks.0.att.ln_x.weight" in trainable and "ln_out.bias" in trainable and "blocks.1.ln2.weight" in trainable
    assert "blocks.0.att.time_faaaa" in trainable and "blocks.1.att.time_faaaa" not in trainable
    with pytest.raises(ValueError, match="matches blocks.0.att.key.weight, the frozen base weight"):
        apply_peft(copy.deepcopy(small_model), PeftConfig("bone", 16, train_parts=("att.key.weight",)), verbose=False)
    with pytest.raises(ValueError, match="train_parts pattern 'tiem' matches no parameter"):
        apply_peft(copy.deepcopy(small_model), PeftConfig("bone", 16, train_parts=("tiem",)), verbose=False)


def test_applying_twice_is_an_error(small_model):
    model = apply_peft(copy.deepcopy(small_model), PeftConfig("bone", 16), verbose=False)
    with pytest.raises(ValueError, match="already has bone adapters"):
        apply_peft(model, PeftConfig("lora", 4), verbose=False)


@pytest.mark.parametrize("config", ALL_METHODS, ids=IDS)
def test_merge_and_unload_equals_the_adapter_model(small_model, config):
    model = randomize_adapters(apply_peft(copy.deepcopy(small_model), config, verbose=False))
    idx = tokens()
    with torch.no_grad():
        expected = model(idx)
        merged = merge_and_unload(model)
        got = merged(idx)
    assert not adapter_layers(merged)
    assert set(merged.state_dict()) == set(small_model.state_dict())
    assert rel_err(got, expected) < 1e-5


def test_bf16_model_keeps_fp32_adapters(small_model):
    model = apply_peft(copy.deepcopy(small_model).to(torch.bfloat16), PeftConfig("bat", 16, bat_index="in"), verbose=False)
    layer = model.blocks[0].att.key
    assert isinstance(layer, BatLinear) and layer.weight.dtype == torch.bfloat16 and layer.bat.dtype == torch.float32
    assert model(tokens()).dtype == torch.bfloat16


@pytest.mark.parametrize("config", ALL_METHODS, ids=IDS)
def test_casting_the_model_to_bf16_keeps_adapters_fp32(small_model, config):
    model = apply_peft(copy.deepcopy(small_model), config, verbose=False).to(torch.bfloat16)
    for layer in adapter_layers(model).values():
        assert layer.weight.dtype == torch.bfloat16
        for name, t in [*layer.named_parameters(), *layer.named_buffers()]:
            if name != "weight":
                assert t.dtype == torch.float32, name
    assert model(tokens()).dtype == torch.bfloat16


@pytest.mark.parametrize("index", ["out", "in"])
def test_bat_materialize_is_the_same_math(small_model, index):
    fast = apply_peft(copy.deepcopy(small_model), PeftConfig("bat", 16, bat_index=index), verbose=False)
    slow = apply_peft(copy.deepcopy(small_model), PeftConfig("bat", 16, bat_index=index, bat_materialize=True),
                      verbose=False)
    g = torch.Generator().manual_seed(2)
    for (name, a), b in zip(adapter_layers(fast).items(), adapter_layers(slow).values()):
        assert b.materialize and not a.materialize
        with torch.no_grad():
            a.bat.copy_(torch.randn(a.bat.shape, generator=g) * 0.05)
            b.bat.copy_(a.bat)
    assert torch.allclose(fast(tokens()), slow(tokens()), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="bat_materialize must be True or False"):
        PeftConfig("bat", 16, bat_materialize="yes")
