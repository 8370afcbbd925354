"""DPO: Direct Preference Optimization's sigmoid loss on summed response log-probabilities.

For a prompt x with a preferred response y_w and a rejected one y_l, the policy pi (base + adapters)
and the reference pi_ref (the base: the adapters switched off, src/peft/disable.py),

    z    = beta * [ (log pi(y_w|x) - log pi_ref(y_w|x)) - (log pi(y_l|x) - log pi_ref(y_l|x)) ]
    loss = -(1 - eps) * log sigmoid(z) - eps * log sigmoid(-z)            (Rafailov et al. 2023, eq. 7)

with label smoothing eps (conservative DPO: the labels are taken as wrong with probability eps; 0: plain
DPO), averaged over the pairs. log pi(y|x) is the sum of the log-probabilities of the response's tokens
(src/align/logprobs.py). The implicit rewards beta * (log pi - log pi_ref) of the chosen and the rejected
responses, their margin and how often the chosen one's is higher (the preference accuracy) are what a
run logs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

DPO_METRICS = ("rewards/chosen", "rewards/rejected", "rewards/margin", "rewards/accuracy")


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, reference_chosen: torch.Tensor,
             reference_rejected: torch.Tensor, beta: float = 0.1, label_smoothing: float = 0.0
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Summed log-probabilities (B,) of the chosen and rejected responses under the policy and the reference
    -> (the mean loss, {metric: detached scalar} for DPO_METRICS)."""
    chosen = policy_chosen - reference_chosen                       # (B,) log pi/pi_ref of y_w
    rejected = policy_rejected - reference_rejected                 # (B,) of y_l
    z = beta * (chosen - rejected)
    losses = -(1.0 - label_smoothing) * F.logsigmoid(z) - label_smoothing * F.logsigmoid(-z)
    rewards_chosen, rewards_rejected = beta * chosen.detach(), beta * rejected.detach()
    metrics = {"rewards/chosen": rewards_chosen.mean(), "rewards/rejected": rewards_rejected.mean(),
               "rewards/margin": (rewards_chosen - rewards_rejected).mean(),
               "rewards/accuracy": (rewards_chosen > rewards_rejected).to(rewards_chosen.dtype).mean()}
    return losses.mean(), metrics
