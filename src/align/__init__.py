"""Preference and reward tuning: DPO on preference pairs, GRPO on prompts with rewards.

    rollout.py         group sampling: each prompt read once, its state copied to its G samples, all rows
                       decoded together in RNN mode, a seeded sampler per completion (sample_groups, Rollouts)
    rewards.py         reward functions: exact answers, a reply format, length, a user's module:function;
                       --reward specs and scoring completions with several (parse_reward, score, weighted_total)
    logprobs.py        the log-probability the model gives each target token, over long samples in chunks
    dpo.py             DPO's loss; dpo_objective.py: its training step on preference pairs (--objective dpo)
    grpo.py            GRPO's group advantages and clipped objective; grpo_objective.py: its training step
                       (--objective grpo): sample, score, advantages, loss
"""

from .dpo import DPO_METRICS, dpo_loss
from .grpo import group_advantages, grpo_loss
from .logprobs import sequence_logprobs, token_logprobs
from .rewards import (BUILTIN_REWARDS, Reward, RewardError, final_answer, parse_reward, score,
                      weighted_total)
from .rollout import Rollouts, concat_states, sample_groups

__all__ = ["dpo_loss", "DPO_METRICS", "group_advantages", "grpo_loss", "token_logprobs", "sequence_logprobs",
           "sample_groups", "Rollouts", "concat_states",
           "Reward", "RewardError", "parse_reward", "score", "weighted_total", "final_answer", "BUILTIN_REWARDS"]
