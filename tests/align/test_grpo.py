"""GRPO's group advantages and clipped, KL-penalised loss against a plain float64 computation, token by token."""

from __future__ import annotations

import math
import statistics

import pytest
import torch

from src.align.grpo import ADVANTAGE_EPS, group_advantages, grpo_loss


def test_advantages_are_relative_to_each_group():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.5, 0.5, 2.0, -1.0, 0.0, 3.0], dtype=torch.float64)
    advantages, flat = group_advantages(rewards, 4)
    expected = []
    for p in range(3):
        group = rewards[4 * p:4 * p + 4].tolist()
        mean, std = statistics.fmean(group), statistics.stdev(group)
        expected += [(r - mean) / (std + ADVANTAGE_EPS) for r in group]
    assert torch.allclose(advantages, torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=1e-12)
    assert flat.item() == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="group size of 1"):
        group_advantages(rewards, 1)
    with pytest.raises(ValueError, match="dividing the 12 rewards"):
        group_advantages(rewards, 5)


@pytest.mark.parametrize("kl_beta, clip_eps", [(0.0, 0.2), (0.04, 0.2), (0.3, 0.05)])
def test_the_loss_and_its_gradient_equal_the_formula_token_by_token(kl_beta, clip_eps):
    g = torch.Generator().manual_seed(0)
    N, T = 5, 7
    logp = (torch.randn(N, T, generator=g, dtype=torch.float64) - 2).requires_grad_(True)
    old = logp.detach() + torch.randn(N, T, generator=g, dtype=torch.float64) * 0.3     # ratios inside and outside the clip
    reference = logp.detach() + torch.randn(N, T, generator=g, dtype=torch.float64) * 0.5
    advantages = torch.randn(N, generator=g, dtype=torch.float64)
    mask = (torch.rand(N, T, generator=g) > 0.3).double()
    mask[0] = 0                                               # a completion without tokens adds nothing
    loss, kl = grpo_loss(logp, old, reference if kl_beta else None, advantages, mask, clip_eps, kl_beta)
    loss.backward()

    expected, grad, kl_sum, tokens = 0.0, torch.zeros(N, T, dtype=torch.float64), 0.0, 0
    for i in range(N):
        count = sum(mask[i].tolist())
        a = advantages[i].item()
        for t in range(T):
            if not mask[i, t]:
                continue
            lp, o, r = logp[i, t].item(), old[i, t].item(), reference[i, t].item()
            ratio = math.exp(lp - o)
            clipped = min(max(ratio, 1 - clip_eps), 1 + clip_eps)
            unclipped_wins = ratio * a <= clipped * a
            term = -min(ratio * a, clipped * a)
            d_term = -ratio * a if unclipped_wins else 0.0     # the clipped branch is constant in logp
            if kl_beta:
                k = math.exp(r - lp) - (r - lp) - 1
                term += kl_beta * k
                d_term += kl_beta * (-math.exp(r - lp) + 1)
                kl_sum, tokens = kl_sum + k, tokens + 1
            expected += term / count / N
            grad[i, t] = d_term / count / N
    assert abs(loss.item() - expected) < 1e-12
    assert torch.allclose(logp.grad, grad, rtol=1e-10, atol=1e-14)
    assert abs(kl.item() - (kl_sum / tokens if kl_beta else 0.0)) < 1e-12


def test_on_policy_the_gradient_is_the_advantage_times_the_score():
    logp = torch.tensor([[-1.0, -2.0], [-0.5, -3.0]], dtype=torch.float64, requires_grad=True)
    advantages = torch.tensor([2.0, -1.0], dtype=torch.float64)
    loss, _ = grpo_loss(logp, logp.detach(), None, advantages, torch.ones(2, 2, dtype=torch.float64), kl_beta=0.0)
    loss.backward()
    assert loss.item() == pytest.approx(-(2.0 - 1.0) / 2)
    assert torch.allclose(logp.grad, -advantages[:, None].expand(2, 2) / 4)
