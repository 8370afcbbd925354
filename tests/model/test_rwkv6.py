"""src/model/rwkv6.py: the RWKV6 model against the `rwkv` pip package, dtypes, gradient
checkpointing, per-model configuration, bad input."""

import pytest
import torch
import torch.nn.functional as F

from src.model import RWKV6Config, load_rwkv6, parameter_shapes, save_rwkv6
from src.model import init_model
from tests.helpers import assert_matches_the_oracle, random_checkpoint, rel_err, rwkv_pip_model


def rwkv_pip_logits(path, tokens):
    """ChatRWKV's `rwkv` package, strategy 'cpu fp32', all positions (the oracle)."""
    model = rwkv_pip_model(path)
    out, _ = model.forward(tokens, None, full_output=True)
    return out


@pytest.mark.parametrize("config", [
    RWKV6Config.preset("tiny"),
    pytest.param(RWKV6Config(n_layer=3, n_embd=256, vocab_size=777, d_mix_lora=64, d_decay_lora=128),
                 marks=pytest.mark.slow, id="7b-style-64-128"),                          # 7B/14B-style LoRA widths
], ids=["tiny-32-64", "7b-style-64-128"])
def test_logits_match_the_rwkv_pip_package(tmp_path, config):
    path, tokens = random_checkpoint(tmp_path, config, init_model, save_rwkv6, n_tokens=50)
    assert_matches_the_oracle(load_rwkv6(path), tokens, rwkv_pip_logits(path, tokens.tolist()))


def test_loaded_sizes_are_inferred_from_the_file(tiny_fp32_checkpoint, tiny_config):
    model = load_rwkv6(tiny_fp32_checkpoint)
    assert model.config == tiny_config
    model = load_rwkv6(tiny_fp32_checkpoint, grad_cp=True, wkv_backend="naive")
    assert model.config.grad_cp and model.config.wkv_backend == "naive"


def test_load_dtype(tiny_fp32_checkpoint):
    model = load_rwkv6(tiny_fp32_checkpoint, dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    logits = model(torch.tensor([[1, 2, 3]]))
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits).all()


# ------------------------------------------------------------------ running

def test_gradient_checkpointing_gives_the_same_gradients_and_saves_less():
    config = RWKV6Config(n_layer=4, n_embd=128, vocab_size=100)     # small vocabulary: the blocks dominate
    idx = torch.randint(0, 100, (2, 40), generator=torch.Generator().manual_seed(0))
    results = {}
    for grad_cp in (False, True):
        model = init_model(config.replace(grad_cp=grad_cp), seed=5, nonzero=True).train()
        model.emb.weight.requires_grad_(False)      # frozen embeddings: no input of block 0 needs a grad
        saved = []

        def pack(t):
            saved.append(t.numel() * t.element_size())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = F.cross_entropy(model(idx[:, :-1]).flatten(0, 1), idx[:, 1:].flatten())
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
        results[grad_cp] = (loss.item(), grads, sum(saved))
    assert results[True][0] == pytest.approx(results[False][0], rel=1e-6)
    for name, g in results[False][1].items():
        assert rel_err(results[True][1][name], g) < 1e-5, name
    assert results[True][2] < 0.2 * results[False][2]


def test_two_differently_configured_models_coexist(tiny_fp32_checkpoint, monkeypatch):
    import src.model.rwkv6.network as model_module
    calls = []
    real = model_module.wkv6
    monkeypatch.setattr(model_module, "wkv6", lambda *a, **kw: calls.append(kw["backend"]) or real(*a, **kw))
    a = load_rwkv6(tiny_fp32_checkpoint, wkv_backend="naive")
    b = init_model(RWKV6Config(n_layer=1, n_embd=192, vocab_size=300, wkv_backend="chunked"), nonzero=True)
    idx = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        la, lb = a(idx), b(idx)
    assert calls == ["naive", "naive", "chunked"]
    assert la.shape == (1, 4, 65536) and lb.shape == (1, 4, 300)
    assert a.config.wkv_backend == "naive" and b.config.wkv_backend == "chunked"
    calls.clear()
    a.set_runtime(wkv_backend="chunked")                 # this model only
    with torch.no_grad():
        a(idx), b(idx)
    assert calls == ["chunked", "chunked", "chunked"]
    with pytest.raises(ValueError, match="runtime options only"):
        a.set_runtime(n_layer=3)


@pytest.mark.parametrize("idx,message", [
    (torch.tensor([1, 2, 3]), "idx must be an integer tensor of shape (B, T), got (3,)"),
    (torch.tensor([[1.0, 2.0]]), "idx must be an integer tensor of shape (B, T), got (1, 2) torch.float32"),
    (torch.tensor([[1, 70000]]), "token ids must lie in [0, 65536), got min 1 max 70000"),
])
def test_bad_token_ids(tiny_fp32_checkpoint, idx, message):
    model = load_rwkv6(tiny_fp32_checkpoint)
    with pytest.raises(ValueError) as e:
        model(idx)
    assert message in str(e.value)


@pytest.mark.parametrize("preset,billions", [("0.1b", 0.197), ("0.4b", 0.473), ("1.6b", 1.600), ("3b", 3.100),
                                             ("7b", 7.636), ("14b", 14.069)])
def test_preset_parameter_counts(preset, billions):
    n = sum(s.numel() for s in parameter_shapes(RWKV6Config.preset(preset)).values())
    assert n / 1e9 == pytest.approx(billions, abs=0.001)
