"""token_logprobs: the log-probability of every target token, equal to log_softmax of the model's logits in
float64, whole or in infctx chunks and head pieces, values and gradients alike."""

from __future__ import annotations

import pytest
import torch

from src.align.logprobs import sequence_logprobs, token_logprobs
from src.model import families, get_family, init_model
from src.peft import PeftConfig, apply_peft
from tests.peft.helpers import randomize_adapters

FAMILIES = [f.name for f in families()]


def adapted(family: str):
    config = get_family(family).config_class.preset("tiny").replace(vocab_size=97)
    model = apply_peft(init_model(config, seed=2, nonzero=True).double(), PeftConfig("lora", 8), verbose=False)
    for p in model.parameters():             # the adapters too (they stay fp32 through .double())
        p.data = p.data.double()
    return randomize_adapters(model, scale=0.05, seed=1)


def data(vocab: int, B: int = 2, T: int = 13):
    g = torch.Generator().manual_seed(4)
    x = torch.randint(0, vocab, (B, T), generator=g)
    y = torch.randint(0, vocab, (B, T), generator=g)
    mask = (torch.rand(B, T, generator=g) > 0.3).double()
    return x, y, mask


@pytest.mark.parametrize("family", FAMILIES)
def test_token_logprobs_equal_log_softmax_of_the_logits(family):
    model = adapted(family)
    x, y, _ = data(97)
    expected = torch.log_softmax(model(x) / 0.7, dim=-1).gather(-1, y[..., None]).squeeze(-1)
    got = token_logprobs(model, x, y, temperature=0.7)
    assert got.dtype == torch.float64 and got.shape == y.shape
    assert torch.allclose(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("family", [pytest.param(f, marks=() if f == FAMILIES[-1] else pytest.mark.slow)
                                    for f in FAMILIES])
@pytest.mark.parametrize("chunk_ctx, head_chunk", [(5, 0), (0, 7), (4, 3)])
def test_chunks_and_head_pieces_give_the_same_values_and_gradients(family, chunk_ctx, head_chunk):
    model = adapted(family)
    x, y, mask = data(97)
    params = [p for p in model.parameters() if p.requires_grad]
    weights = torch.randn(mask.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64)

    def run(**kw):
        logp = token_logprobs(model, x, y, **kw)
        grads = torch.autograd.grad((logp * weights).sum(), params)
        return logp.detach(), grads

    whole, whole_grads = run()
    pieces, piece_grads = run(chunk_ctx=chunk_ctx, head_chunk=head_chunk)
    assert torch.allclose(pieces, whole, rtol=0, atol=1e-12)
    for a, b in zip(piece_grads, whole_grads):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)
    sums = sequence_logprobs(model, x, y, mask, chunk_ctx=chunk_ctx, head_chunk=head_chunk)
    assert torch.allclose(sums, (whole * mask).sum(1), rtol=0, atol=1e-11)
