"""--objective grpo: GRPO's training step on prompts (the loss: grpo.py; sampling: rollout.py; rewards.py).

Per micro-batch of B prompts:
  1. sample --group_size completions of each (rollout.py: each prompt read once, its state copied to the G
     rows of its group, all B x G rows decoded together in RNN mode), adapters on, no gradient; row k of
     sample g draws from its own generator seeded by (--seed, g, k), so a run is reproducible and a resumed
     run samples what the uninterrupted one did;
  2. score them with every --reward (the completion's text without its stop token, leading spaces off),
     weight and sum; advantages relative to each group (grpo.py);
  3. the policy's per-token log-probabilities of the completions (with gradient; infctx chunks with
     --chunk_ctx, the head in pieces with --head_chunk) and, with --kl_beta > 0, the reference's: the same
     model inside adapters_disabled, without gradient; the loss masks prompt and padding tokens.
Logged per step: the weighted reward's mean and standard deviation, each reward function's, the KL to the
reference, the mean completion length in tokens, and the fraction of groups with zero advantage.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.prompts import PromptDataset, check_prompt_lengths, read_prompts, stop_tokens
from ..peft.disable import adapters_disabled
from ..train.objective import Objective
from .grpo import grpo_loss, group_advantages
from .logprobs import token_logprobs
from .rewards import parse_reward, score, weighted_total
from .rollout import sample_groups


def rollout_seed(seed: int, sample: int, row: int) -> int:
    """The seed of completion `row` of sample number `sample`: a function of the three alone."""
    return int(np.random.default_rng([seed, 2, sample, row]).integers(2**62))


class GRPO(Objective):
    name = "grpo"
    shown = ("reward", "kl")

    def __init__(self, cfg):
        super().__init__(cfg)
        self.rewards = [parse_reward(spec, cfg.format_regex or None, cfg.length_target) for spec in cfg.reward]
        names = [r.name for r in self.rewards]
        self.metrics = ("reward", "reward_std", *(f"reward/{n}" for n in names), *(f"reward/{n}_std" for n in names),
                        "kl", "completion_length", "zero_advantage")
        self._prompts = None
        self._tokenizer = None

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from ..data.tokenizer import WorldTokenizer
            self._tokenizer = WorldTokenizer()
        return self._tokenizer

    @property
    def prompts(self):
        if self._prompts is None:
            if not self.cfg.data_file:
                raise ValueError("--data_file PROMPTS.jsonl is required with --objective grpo ({\"prompt\" or "
                                 "\"messages\", \"answer\"} a line)")
            self._prompts = read_prompts(self.cfg.data_file, self.tokenizer)
        return self._prompts

    def sequences_per_sample(self) -> int:
        return self.cfg.group_size

    def gradient_expected(self, module) -> bool:
        """A step whose every group scored its completions alike has zero advantages; with the policy still at
        the reference (the adapters' start) its gradient is exactly zero, and rightly so."""
        return module.step_metrics.get("zero_advantage", 1.0) < 1.0

    def check_data(self, model_config) -> None:
        prompts = self.prompts
        check_prompt_lengths(prompts, self.cfg.ctx_len, self.cfg.max_new_tokens)
        top = max(max(p.tokens) for p in prompts.prompts)
        if top >= model_config.vocab_size:
            raise ValueError(f"--data_file {prompts.path}: token {top} is outside the model's vocabulary of "
                             f"{model_config.vocab_size}")

    def dataset(self, module, first_step: int, steps: int) -> PromptDataset:
        cfg, trainer = self.cfg, module.trainer
        return PromptDataset(self.prompts, seed=cfg.seed, micro_bsz=cfg.micro_bsz, rank=trainer.global_rank,
                             world_size=trainer.world_size, first_batch=first_step * cfg.accumulate_grad_batches,
                             num_batches=steps * cfg.accumulate_grad_batches)

    def collate(self, items: list) -> list[tuple[int, int]]:
        return [(int(g), int(i)) for g, i in items]

    def loss(self, module, batch):
        cfg, model = self.cfg, module.model
        G = cfg.group_size
        prompts = [self.prompts.prompts[i] for _, i in batch]
        tokens = [list(p.tokens) for p in prompts]
        seeds = [rollout_seed(cfg.seed, g, k) for g, _ in batch for k in range(G)]
        stops = stop_tokens(self.prompts, self.tokenizer)
        rollouts = sample_groups(model, tokens, G, cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
                                 seeds=seeds, stop_tokens=stops)
        texts = [self.tokenizer.decode(c[:-1] if stopped else c).lstrip()
                 for c, stopped in zip(rollouts.completions, rollouts.stopped)]
        scores = score(self.rewards, [p.text for p in prompts for _ in range(G)], texts,
                       [p.answer for p in prompts for _ in range(G)])                     # (B*G, R) float64
        total = weighted_total(scores, self.rewards)                                    # (B*G,)
        advantages, zero = group_advantages(total, G)
        x, y, mask = (t.to(module.device) for t in rollouts.padded(tokens))
        draw = module.dropout_draw if model.training else None
        logp = token_logprobs(model, x, y, cfg.chunk_ctx, cfg.head_chunk, cfg.temperature, draw)     # (B*G, T)
        reference = None
        if cfg.kl_beta > 0:
            with torch.no_grad(), adapters_disabled(model):
                reference = token_logprobs(model, x, y, cfg.chunk_ctx, cfg.head_chunk, cfg.temperature)
        loss, kl = grpo_loss(logp, logp.detach(), reference, advantages.to(logp.device), mask, cfg.clip_eps,
                             cfg.kl_beta)
        metrics = {"reward": total.mean(), "reward_std": total.std() if total.numel() > 1 else total.new_zeros(()),
                   "kl": kl, "completion_length": mask.sum(dim=1).float().mean(), "zero_advantage": zero}
        for r, reward in enumerate(self.rewards):
            column = scores[:, r]
            metrics[f"reward/{reward.name}"] = column.mean()
            metrics[f"reward/{reward.name}_std"] = column.std() if column.numel() > 1 else column.new_zeros(())
        return loss, metrics

    @torch.no_grad()
    def finite(self, module, batch) -> bool:
        """The model's log-probabilities of the micro-batch's prompts are finite (nothing sampled)."""
        cfg = self.cfg
        for _, i in batch:
            tokens = torch.tensor([self.prompts.prompts[i].tokens], device=module.device)
            if tokens.shape[1] < 2:
                continue
            logp = token_logprobs(module.model, tokens[:, :-1], tokens[:, 1:], cfg.chunk_ctx, cfg.head_chunk,
                                  cfg.temperature)
            if not torch.isfinite(logp).all():
                return False
        return True
