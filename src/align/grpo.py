"""GRPO: Group Relative Policy Optimization's advantages and clipped objective (Shao et al. 2024, DeepSeekMath).

For each prompt q the policy samples a group of G completions o_1..o_G, scored by the rewards r_i. Each
completion's advantage is its reward relative to its group,

    A_i = (r_i - mean(r)) / (std(r) + 1e-4)                  (std: the group's sample standard deviation)

and every completion token t is pushed by it through the clipped ratio of PPO, with a KL penalty towards
the reference policy (the base: adapters switched off):

    ratio_it = pi(o_it | q, o_i<t) / pi_old(o_it | ...)
    L_it     = -min(ratio_it A_i, clip(ratio_it, 1 - eps, 1 + eps) A_i) + beta * KL_it
    KL_it    = exp(ref_it - logp_it) - (ref_it - logp_it) - 1       (the unbiased, non-negative k3 estimator)
    loss     = mean over completions of (mean over the completion's tokens of L_it)      (the paper's eq. 3)

pi_old is the policy that sampled: with one optimizer step per sampled batch (what the trainer does) the
ratio is 1 and its gradient is A_i * grad log pi, as in the paper's on-policy case; the clip acts when
completions are reused. A group whose rewards are all equal has zero advantages and teaches only the KL
term: its share is logged (zero_advantage).
"""

from __future__ import annotations

import torch

ADVANTAGE_EPS = 1e-4


def group_advantages(rewards: torch.Tensor, group_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """rewards (P*G,), rows grouped by prompt (row p*G + g) -> (advantages (P*G,), the fraction of groups whose
    rewards are all equal)."""
    if group_size < 2 or rewards.numel() % group_size:
        raise ValueError(f"group advantages need groups of at least 2 completions dividing the {rewards.numel()} "
                         f"rewards, got a group size of {group_size}")
    groups = rewards.reshape(-1, group_size)                                   # (P, G)
    mean = groups.mean(dim=1, keepdim=True)
    std = groups.std(dim=1, keepdim=True)                                       # unbiased
    advantages = (groups - mean) / (std + ADVANTAGE_EPS)
    flat = (groups.amax(dim=1) == groups.amin(dim=1)).to(rewards.dtype).mean()
    return advantages.reshape(-1), flat


def grpo_loss(logp: torch.Tensor, old_logp: torch.Tensor, reference_logp: torch.Tensor | None,
              advantages: torch.Tensor, mask: torch.Tensor, clip_eps: float = 0.2, kl_beta: float = 0.04
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Token log-probabilities (N, T) of the sampled completions under the policy (with gradient), the sampling
    policy and the reference (None with kl_beta 0), advantages (N,), mask (N, T) 1 on completion tokens ->
    (the loss, the mean KL per completion token, detached)."""
    ratio = torch.exp(logp - old_logp)                                          # (N, T)
    a = advantages[:, None].to(logp.dtype)
    surrogate = torch.minimum(ratio * a, torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * a)
    per_token = -surrogate
    weights = mask.to(logp.dtype)
    if reference_logp is not None:
        delta = reference_logp - logp
        kl = torch.exp(delta) - delta - 1.0                                     # (N, T) >= 0
        per_token = per_token + kl_beta * kl
        kl_mean = (kl.detach() * weights).sum() / weights.sum().clamp_min(1.0)
    else:
        kl_mean = torch.zeros((), dtype=logp.dtype, device=logp.device)
    per_completion = (per_token * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)     # (N,)
    return per_completion.mean(), kl_mean
