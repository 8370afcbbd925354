"""src/plan/head.py against HeldMemory's peak of the trainer's head and loss on the CPU: within 10%."""

import pytest
import torch

from src.bench.held import HeldMemory
from src.plan.head import HeadModel
from src.train.head_loss import head_loss

from .conftest import tiny


def measured_peak(config, tokens: int, head_chunk: int) -> int:
    head = torch.nn.Linear(config.n_embd, config.vocab_size, bias=False).requires_grad_(False)
    features = torch.randn(1, tokens, config.n_embd, requires_grad=True)
    targets = torch.randint(0, config.vocab_size, (1, tokens), generator=torch.Generator().manual_seed(0))
    with HeldMemory() as held:
        head_loss(head, features, targets, torch.ones(1, tokens), True, head_chunk=head_chunk).backward()
    return held.peak_bytes()


@pytest.mark.parametrize("tokens,head_chunk", [(96, 0), (256, 0), (256, 32), pytest.param(1024, 32, marks=pytest.mark.slow)])
def test_head_peak(tokens, head_chunk):
    config = tiny("x060")
    estimate = HeadModel(config, torch.float32).peak(tokens, head_chunk)
    measured = measured_peak(config, tokens, head_chunk)
    assert abs(estimate / measured - 1) < 0.10, (estimate, measured)


def test_chunks_hold_far_less():
    config = tiny("x070")
    head = HeadModel(config, torch.bfloat16)
    assert head.peak(4096, 256) < head.peak(4096, 0) / 4
