"""src/train/head_loss.py (--head_chunk): the head and the loss a chunk of tokens at a time give the
loss and every gradient of the unchunked path in float64, for every model family, with masks, L2Wrap,
infctx and gradient checkpointing; the forward then keeps no logits for the backward, and the peak of
a step drops; evaluation and train.py give the same numbers with it."""

import csv

import pytest
import torch

from src.bench.held import HeldMemory
from src.model.family import families
from src.model import init_model
from src.peft import PeftConfig, apply_peft
from src.train import config_from_values, run
from src.train.head_loss import head_loss
from src.train.infctx import sample_loss
from src.train.loss import training_loss
from tests.helpers import rel_err
from tests.train.test_trainer import flags

FAMILIES = [f.name for f in families()]
VOCAB = 300


def model_of(family: str, grad_cp: bool = False, peft: PeftConfig | None = None, dtype=torch.float64,
             vocab: int = VOCAB):
    config = next(f for f in families() if f.name == family).config_class(
        n_layer=2, n_embd=64, head_size=32, vocab_size=vocab, grad_cp=grad_cp)
    model = init_model(config, seed=5, nonzero=True)
    if peft is not None:
        apply_peft(model, peft, verbose=False)
    model = model.to(dtype).train()
    if peft is not None:
        with torch.no_grad():                   # non-zero adapters, so every path carries a gradient
            g = torch.Generator().manual_seed(1)
            for p in model.parameters():
                if p.requires_grad:
                    p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.05)
    return model


def batch(B: int = 2, T: int = 23, seed: int = 0, vocab: int = VOCAB):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, vocab, (B, T + 1), generator=g)
    mask = (torch.rand(B, T, generator=g) < 0.6).to(torch.float64)         # SFT: some targets do not count
    return tokens[:, :-1], tokens[:, 1:], mask


def loss_and_grads(model, x, y, mask, l2wrap=True, chunk_ctx=0, head_chunk=0):
    model.zero_grad(set_to_none=True)
    loss = sample_loss(model, x, y, mask, l2wrap, chunk_ctx, head_chunk=head_chunk)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("l2wrap", [True, False])
def test_chunked_head_and_loss_equal_the_unchunked_path_in_float64(family, l2wrap):
    """Every parameter trains (the head included), so every gradient is compared."""
    model = model_of(family)
    x, y, mask = batch()
    loss, grads = loss_and_grads(model, x, y, mask, l2wrap)
    assert "head.weight" in grads and len(grads) >= len(list(model.parameters())) - 3   # RWKV-7 layer 0: no v0-v2
    for head_chunk in (1, 5, 17, 45, 46, 1000):          # chunks that do and do not divide B*T = 46, and >= it
        chunked_loss, chunked = loss_and_grads(model, x, y, mask, l2wrap, head_chunk=head_chunk)
        assert rel_err(chunked_loss, loss) < 1e-12, head_chunk
        assert chunked.keys() == grads.keys()
        for name, grad in grads.items():
            assert rel_err(chunked[name], grad) < 1e-10, (head_chunk, name)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("grad_cp", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_chunked_head_with_infctx_and_grad_cp_equals_the_whole_sample(family, grad_cp):
    """An adapter model (Bone and tuned states), chunks of the sample (--chunk_ctx) and of the head together."""
    model = model_of(family, grad_cp, PeftConfig("bone", 16, train_state=True))
    x, y, mask = batch(T=30)
    loss, grads = loss_and_grads(model, x, y, mask)
    for chunk_ctx, head_chunk in ((7, 4), (16, 9), (0, 13), (7, 0)):
        chunked_loss, chunked = loss_and_grads(model, x, y, mask, chunk_ctx=chunk_ctx, head_chunk=head_chunk)
        assert rel_err(chunked_loss, loss) < 1e-12
        for name, grad in grads.items():
            assert rel_err(chunked[name], grad) < 1e-10, (chunk_ctx, head_chunk, name)


def test_head_loss_is_training_loss_of_the_head():
    """The function itself, against the logits computed whole, with the counts of a piece of a longer sample."""
    g = torch.Generator().manual_seed(3)
    head = torch.nn.Linear(16, 50, bias=False).double()
    features = torch.randn(3, 11, 16, generator=g, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 50, (3, 11), generator=g)
    mask = torch.rand(3, 11, generator=g) < 0.5
    count = torch.tensor(40.0)
    expected = training_loss(head(features), targets, mask, True, count=count, positions=99)
    got = head_loss(head, features, targets, mask, True, count=count, positions=99, head_chunk=4)
    assert rel_err(got, expected) < 1e-12
    g_expected = torch.autograd.grad(expected, [features, head.weight])
    g_got = torch.autograd.grad(got, [features, head.weight])
    assert all(rel_err(a, b) < 1e-10 for a, b in zip(g_got, g_expected))


def held_logit_bytes(model, x, y, mask, head_chunk):
    """Bytes the forward leaves alive for the backward, and the largest of them."""
    with HeldMemory() as held:
        loss = sample_loss(model, x, y, mask, True, head_chunk=head_chunk)
    nbytes = held.bytes()
    loss.backward()
    return nbytes


@pytest.mark.parametrize("family", FAMILIES)
def test_the_forward_keeps_no_logits_and_the_peak_drops(family):
    """fp32, vocab 8192, B*T = 2*100 tokens: unchunked, the forward keeps the (B, T, V) fp32 log-probabilities
    (and the logits) for the backward; chunked by 25, none of them. The peak of the whole step drops by
    at least one (B, T, V) tensor: unchunked it holds two at once (the log-probabilities and the logits,
    or their gradient); chunked, one chunk's, and its peak is then elsewhere in the step."""
    vocab = 8192
    model = model_of(family, dtype=torch.float32, vocab=vocab)
    x, y, mask = batch(T=100, vocab=vocab)
    logits_bytes = 2 * 100 * vocab * 4
    whole = held_logit_bytes(model, x, y, mask, 0)
    chunked = held_logit_bytes(model, x, y, mask, 25)
    assert whole - chunked >= logits_bytes                 # at least the log-probabilities are gone
    assert chunked < whole - logits_bytes * 0.9
    peaks = {}
    for head_chunk in (0, 25):
        model.zero_grad(set_to_none=True)
        with HeldMemory() as held:
            sample_loss(model, x, y, mask, True, head_chunk=head_chunk).backward()
        peaks[head_chunk] = held.peak_bytes()
    assert peaks[0] - peaks[25] >= logits_bytes, peaks


def test_evaluation_with_a_chunked_head_gives_the_same_loss(tiny_fp32_checkpoint, sample_data):
    from src.data import BinIdx
    from src.infer.evaluate import evaluate
    from src.model import load_model
    model, data = load_model(tiny_fp32_checkpoint), BinIdx(sample_data)
    whole = evaluate(model, data, 64, max_windows=3, batch_size=2)
    for head_chunk in (37, 10_000):                     # a chunk that does not divide 2 * 64, and one above it
        chunked = evaluate(model, data, 64, max_windows=3, batch_size=2, head_chunk=head_chunk)
        assert chunked["tokens"] == whole["tokens"] and chunked["loss"] == pytest.approx(whole["loss"], rel=1e-6)
    with pytest.raises(ValueError, match="--head_chunk must not be negative, got -1"):
        evaluate(model, data, 64, max_windows=3, head_chunk=-1)


def losses(proj):
    with open(proj / "metrics.csv") as f:
        return [float(r["loss"]) for r in csv.DictReader(f) if r.get("loss")]


@pytest.mark.slow
def test_train_py_with_head_chunk_follows_the_unchunked_run(tiny_fp32_checkpoint, sample_data, tmp_path):
    """Same steps, same losses (to float rounding), with validation chunked too."""
    runs = {}
    for head_chunk in (0, 24):
        proj = tmp_path / f"head{head_chunk}"
        run(config_from_values({}, flags(tiny_fp32_checkpoint, sample_data, proj, epoch_steps=3, head_chunk=head_chunk,
                                         val_data=str(sample_data), val_windows=2)))
        runs[head_chunk] = losses(proj)
    assert len(runs[0]) == 3 and runs[24] == pytest.approx(runs[0], rel=1e-5)
