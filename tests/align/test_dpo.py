"""DPO's loss, gradients and logged rewards against the formula computed independently in float64, and the
reference (adapters off) against a separately loaded base model."""

from __future__ import annotations

import math

import pytest
import torch

from src.align.dpo import dpo_loss
from src.align.logprobs import sequence_logprobs
from src.model import families, load_model
from src.peft import adapters_disabled, apply_peft
from tests.peft.helpers import method_matrix, randomize_adapters

FAMILIES = [f.name for f in families()]


def log_sigmoid(v: float) -> float:
    return -math.log1p(math.exp(-v)) if v >= 0 else v - math.log1p(math.exp(v))


def sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


@pytest.mark.parametrize("beta, smoothing", [(0.1, 0.0), (0.5, 0.2), (2.0, 0.0)])
def test_loss_gradients_and_rewards_equal_the_formula(beta, smoothing):
    g = torch.Generator().manual_seed(0)
    pc, pr, rc, rr = (torch.randn(6, generator=g, dtype=torch.float64) * 3 - 20 for _ in range(4))
    pc.requires_grad_(True)
    pr.requires_grad_(True)
    loss, metrics = dpo_loss(pc, pr, rc, rr, beta, smoothing)
    loss.backward()
    B = len(pc)
    expected, grad_c, grad_r, rewards_c, rewards_r = 0.0, [], [], [], []
    for i in range(B):
        chosen, rejected = float(pc[i] - rc[i]), float(pr[i] - rr[i])
        z = beta * (chosen - rejected)
        expected += (-(1 - smoothing) * log_sigmoid(z) - smoothing * log_sigmoid(-z)) / B
        dz = (-(1 - smoothing) * sigmoid(-z) + smoothing * sigmoid(z)) / B        # d loss / d z
        grad_c.append(dz * beta)
        grad_r.append(-dz * beta)
        rewards_c.append(beta * chosen)
        rewards_r.append(beta * rejected)
    assert abs(loss.item() - expected) < 1e-12
    assert torch.allclose(pc.grad, torch.tensor(grad_c, dtype=torch.float64), rtol=1e-10, atol=1e-14)
    assert torch.allclose(pr.grad, torch.tensor(grad_r, dtype=torch.float64), rtol=1e-10, atol=1e-14)
    assert abs(metrics["rewards/chosen"].item() - sum(rewards_c) / B) < 1e-12
    assert abs(metrics["rewards/rejected"].item() - sum(rewards_r) / B) < 1e-12
    assert abs(metrics["rewards/margin"].item() - (sum(rewards_c) - sum(rewards_r)) / B) < 1e-12
    assert metrics["rewards/accuracy"].item() == sum(c > r for c, r in zip(rewards_c, rewards_r)) / B


def test_at_the_reference_the_loss_is_log_2():
    same = torch.tensor([-3.0, -7.0], dtype=torch.float64)
    loss, metrics = dpo_loss(same, same - 1, same, same - 1)
    assert abs(loss.item() - math.log(2)) < 1e-12 and metrics["rewards/accuracy"].item() == 0.0




@pytest.mark.parametrize("family, method", [
    pytest.param(family, method, marks=() if (family, method) == (FAMILIES[0], "bone") else pytest.mark.slow)
    for family in FAMILIES for method in method_matrix(variants=False)])
def test_the_reference_is_the_separately_loaded_base(tiny_bases, family, method):
    config = method_matrix(variants=False)[method]
    model = randomize_adapters(apply_peft(load_model(tiny_bases[family]).double(), config, verbose=False), 0.05)
    base = load_model(tiny_bases[family]).double()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randint(0, 65536, (2, 2, 10), generator=g)
    mask = torch.ones(2, 10, dtype=torch.float64)
    with torch.no_grad():
        with adapters_disabled(model):
            reference = sequence_logprobs(model, x, y, mask, chunk_ctx=4)
        policy = sequence_logprobs(model, x, y, mask)
        expected = sequence_logprobs(base, x, y, mask)
    assert torch.allclose(reference, expected, rtol=0, atol=1e-9)
    assert (policy - expected).abs().max() > 1e-6
