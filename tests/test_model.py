"""src/model.py: the RWKV6 model against the `rwkv` pip package, strict loading, saving,
memory-mapped loading, gradient checkpointing and per-model configuration."""

import os

import psutil
import pytest
import torch
import torch.nn.functional as F

from src.config import RWKV6Config
from src.init_model import init_rwkv6, init_rwkv6_state_dict
from src.model import RWKV6, load_rwkv6, parameter_shapes, read_checkpoint, save_rwkv6
from tests.helpers import rel_err


def rwkv_pip_logits(path, tokens):
    """ChatRWKV's `rwkv` package, strategy 'cpu fp32', all positions (the oracle)."""
    from rwkv.model import RWKV     # reads RWKV_* environment variables at import: its business, not ours
    model = RWKV(model=str(path), strategy="cpu fp32", verbose=False)
    out, _ = model.forward(tokens, None, full_output=True)
    return out


@pytest.mark.parametrize("config", [
    RWKV6Config.preset("tiny"),
    RWKV6Config(n_layer=3, n_embd=256, vocab_size=777, d_mix_lora=64, d_decay_lora=128),   # 7B/14B-style LoRA widths
], ids=["tiny-32-64", "7b-style-64-128"])
def test_logits_match_the_rwkv_pip_package(tmp_path, config):
    path = tmp_path / "model.pth"
    save_rwkv6(init_rwkv6(config, seed=11, nonzero=True), path, dtype=torch.float32)
    tokens = torch.randint(0, config.vocab_size, (50,), generator=torch.Generator().manual_seed(0))
    expected = rwkv_pip_logits(path, tokens.tolist())
    model = load_rwkv6(path)
    with torch.no_grad():
        ours = model(tokens[None])[0]
        # the check is not vacuous: the attention path moves the logits a lot
        for block in model.blocks:
            block.att.output.weight.zero_()
        without_attention = model(tokens[None])[0]
    assert ours.shape == expected.shape
    assert rel_err(ours, expected) < 1e-4
    assert rel_err(without_attention, expected) > 1e-2


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


# ------------------------------------------------------------------ strict loading

def corrupt(tmp_path, source, edit):
    sd = dict(torch.load(source))
    edit(sd)
    path = tmp_path / "edited.pth"
    torch.save(sd, path)
    return path


@pytest.mark.parametrize("edit,message", [
    (lambda sd: sd.pop("blocks.1.att.gate.weight"), "missing key blocks.1.att.gate.weight (expected shape (128, 128))"),
    (lambda sd: sd.update({"blocks.0.att.time_state": torch.zeros(2, 64, 64)}),
     "unexpected key blocks.0.att.time_state (2, 64, 64)"),
    (lambda sd: sd.update({"blocks.1.ffn.key.weight": torch.zeros(512, 128)}),
     "key blocks.1.ffn.key.weight has shape (512, 128) in the file, the model expects (448, 128)"),
    (lambda sd: sd.update({"blocks.0.att.time_decay": [1.0]}),
     "key blocks.0.att.time_decay holds a list, not a tensor"),
    (lambda sd: sd.pop("blocks.0.att.time_faaaa"), "not an RWKV6 checkpoint, missing key(s) ['blocks.0.att.time_faaaa']"),
])
def test_strict_loading_names_the_key_and_shapes(tmp_path, tiny_fp32_checkpoint, edit, message):
    path = corrupt(tmp_path, tiny_fp32_checkpoint, edit)
    with pytest.raises(ValueError) as e:
        load_rwkv6(path)
    assert str(path) in str(e.value) and message in str(e.value)


def test_loading_against_a_given_config(tiny_fp32_checkpoint, tiny_config):
    with pytest.raises(ValueError, match="blocks.0.ffn.key.weight has shape \\(448, 128\\) in the file, "
                                         "the model expects \\(512, 128\\)"):
        load_rwkv6(tiny_fp32_checkpoint, config=tiny_config.replace(dim_ffn=512))


def test_missing_and_corrupt_files(tmp_path, tiny_fp32_checkpoint):
    with pytest.raises(FileNotFoundError, match="nope.pth does not exist"):
        load_rwkv6(tmp_path / "nope.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(tiny_fp32_checkpoint.read_bytes()[:5000])
    with pytest.raises(ValueError, match="cannot read checkpoint .*bad.pth"):
        load_rwkv6(bad)
    rwkv7 = tmp_path / "rwkv7.pth"
    torch.save({"emb.weight": torch.zeros(10, 64), "blocks.0.att.x_r": torch.zeros(1, 1, 64)}, rwkv7)
    with pytest.raises(ValueError, match="looks like an RWKV7 checkpoint"):
        load_rwkv6(rwkv7)


def test_loading_is_memory_mapped(tmp_path):
    """A bf16 file loaded as bf16 stays in the page cache: resident memory grows by far less than its size."""
    config = RWKV6Config(n_layer=1, n_embd=1024, vocab_size=65536)      # ~300 MB of bf16
    path = tmp_path / "big.pth"
    save_rwkv6(init_rwkv6_state_dict(config, dtype=torch.bfloat16), path, dtype=None)
    size = path.stat().st_size
    process = psutil.Process(os.getpid())
    before = process.memory_info().rss
    model = load_rwkv6(path, dtype=torch.bfloat16)
    grown = process.memory_info().rss - before
    assert model.emb.weight.dtype == torch.bfloat16
    assert grown < 0.25 * size, f"loading grew RSS by {grown / 2**20:.0f} MiB for a {size / 2**20:.0f} MiB file"


# ------------------------------------------------------------------ saving

def expected_rwkv_lm_keys(n_layer):
    """RWKV-LM x060's key list, written out by hand."""
    keys = ["emb.weight"]
    for i in range(n_layer):
        b = f"blocks.{i}."
        keys += [b + "ln1.weight", b + "ln1.bias", b + "ln2.weight", b + "ln2.bias"]
        if i == 0:
            keys += [b + "ln0.weight", b + "ln0.bias"]
        keys += [b + "att." + n for n in (
            "time_maa_x", "time_maa_w", "time_maa_k", "time_maa_v", "time_maa_r", "time_maa_g",
            "time_maa_w1", "time_maa_w2", "time_decay", "time_decay_w1", "time_decay_w2", "time_faaaa",
            "receptance.weight", "key.weight", "value.weight", "output.weight", "gate.weight",
            "ln_x.weight", "ln_x.bias")]
        keys += [b + "ffn." + n for n in ("time_maa_k", "time_maa_r", "key.weight", "receptance.weight", "value.weight")]
    return keys + ["ln_out.weight", "ln_out.bias", "head.weight"]


def test_save_writes_rwkv_lm_keys_in_bf16(tmp_path, tiny_fp32_checkpoint):
    model = load_rwkv6(tiny_fp32_checkpoint)
    out = save_rwkv6(model, tmp_path / "saved.pth")
    sd = torch.load(out)
    assert list(sd) == expected_rwkv_lm_keys(2)
    assert {v.dtype for v in sd.values()} == {torch.bfloat16}
    assert sd["blocks.0.att.time_faaaa"].shape == (2, 64)
    assert sd["blocks.0.att.time_maa_w2"].shape == (5, 32, 128)
    assert sd["blocks.0.att.time_decay"].shape == (1, 1, 128)
    assert [p.name for p in tmp_path.iterdir()] == ["saved.pth"]          # no temporary file left
    again = load_rwkv6(out)
    assert rel_err(again.head.weight, model.head.weight) < 1e-2


# ------------------------------------------------------------------ running

def test_gradient_checkpointing_gives_the_same_gradients_and_saves_less():
    config = RWKV6Config(n_layer=4, n_embd=128, vocab_size=100)     # small vocabulary: the blocks dominate
    idx = torch.randint(0, 100, (2, 40), generator=torch.Generator().manual_seed(0))
    results = {}
    for grad_cp in (False, True):
        model = init_rwkv6(config.replace(grad_cp=grad_cp), seed=5, nonzero=True).train()
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
    import src.model as model_module
    calls = []
    real = model_module.wkv6
    monkeypatch.setattr(model_module, "wkv6", lambda *a, **kw: calls.append(kw["backend"]) or real(*a, **kw))
    a = load_rwkv6(tiny_fp32_checkpoint, wkv_backend="naive")
    b = init_rwkv6(RWKV6Config(n_layer=1, n_embd=192, vocab_size=300, wkv_backend="chunked"), nonzero=True)
    idx = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        la, lb = a(idx), b(idx)
    assert calls == ["naive", "naive", "chunked"]
    assert la.shape == (1, 4, 65536) and lb.shape == (1, 4, 300)
    assert a.config.wkv_backend == "naive" and b.config.wkv_backend == "chunked"


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


def test_model_built_on_meta_costs_nothing():
    with torch.device("meta"):
        model = RWKV6(RWKV6Config.preset("14b"))
    assert all(p.is_meta for p in model.parameters())


def test_read_checkpoint_returns_tensors(tiny_fp32_checkpoint):
    sd = read_checkpoint(tiny_fp32_checkpoint)
    assert sd["emb.weight"].shape == (65536, 128)
