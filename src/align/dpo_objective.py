"""--objective dpo: DPO's training step on preference pairs (the loss: dpo.py; the data: src/data/pairs.py).

Per micro-batch of B pairs, the chosen and the rejected sequences run as one batch of 2B rows through the
policy (base + adapters, with gradient, in infctx chunks with --chunk_ctx, the head in pieces with
--head_chunk) and through the reference, the same model inside `adapters_disabled` and without gradient:
no second copy of the model exists, on one GPU or under ZeRO. With --ref_precompute 1 the reference
log-probabilities of every pair are computed once, when training starts, in one pass split over the ranks
and gathered (a resumed run computes the same numbers again), and each step runs the policy alone.
"""

from __future__ import annotations

import sys
import time

import torch

from ..data.pairs import PairDataset, check_pairs, pair_sample
from ..peft.disable import adapters_disabled
from ..train.objective import Objective, binidx_data
from .dpo import DPO_METRICS, dpo_loss
from .logprobs import sequence_logprobs


class DPO(Objective):
    name = "dpo"
    metrics = DPO_METRICS
    shown = DPO_METRICS                 # all four on the progress bar too

    def __init__(self, cfg):
        super().__init__(cfg)
        self.reference: torch.Tensor | None = None       # (pairs, 2) with --ref_precompute: chosen, rejected

    def sequences_per_sample(self) -> int:
        return 2

    def check_data(self, model_config) -> None:
        check_pairs(binidx_data(self.cfg, model_config), self.cfg.ctx_len)

    def dataset(self, module, first_step: int, steps: int) -> PairDataset:
        cfg, trainer = self.cfg, module.trainer
        return PairDataset(module.data, cfg.ctx_len, seed=cfg.seed, micro_bsz=cfg.micro_bsz,
                           rank=trainer.global_rank, world_size=trainer.world_size,
                           first_batch=first_step * cfg.accumulate_grad_batches,
                           num_batches=steps * cfg.accumulate_grad_batches)

    def log_probabilities(self, module, x, y, mask) -> torch.Tensor:
        """x, y, mask (B, 2, T) -> (B, 2) summed response log-probabilities under the model as it is now."""
        cfg, model = self.cfg, module.model
        B = x.shape[0]
        draw = module.dropout_draw if model.training else None
        flat = (t.reshape(2 * B, -1) for t in (x, y, mask))
        return sequence_logprobs(model, *flat, cfg.chunk_ctx, cfg.head_chunk, draw).reshape(B, 2)

    @torch.no_grad()
    def reference_of(self, module, x, y, mask) -> torch.Tensor:
        """(B, 2) summed log-probabilities under the reference: the base, adapters switched off."""
        with adapters_disabled(module.model):
            return self.log_probabilities(module, x, y, mask)

    def loss(self, module, batch):
        x, y, mask, documents = batch                                          # (B, 2, T) x 3, (B,)
        policy = self.log_probabilities(module, x, y, mask)                    # (B, 2)
        if self.reference is not None:
            reference = self.reference[documents.cpu()].to(policy.device, policy.dtype)
        else:
            reference = self.reference_of(module, x, y, mask).to(policy.dtype)
        return dpo_loss(policy[:, 0], policy[:, 1], reference[:, 0], reference[:, 1], self.cfg.dpo_beta,
                        self.cfg.dpo_label_smoothing)

    @torch.no_grad()
    def validate(self, module, data, pairs: int | None = None) -> float:
        """The mean DPO loss over the held-out pairs of `data` (the first `pairs` of them; None: all), in
        micro-batches, dropout off, the reference computed alongside."""
        cfg = self.cfg
        n = min(data.num_documents, pairs or data.num_documents)
        training = module.model.training
        module.model.eval()
        try:
            total = 0.0
            for at in range(0, n, cfg.micro_bsz):
                items = [pair_sample(data, d, cfg.ctx_len) for d in range(at, min(at + cfg.micro_bsz, n))]
                x, y, mask = (torch.stack(t).to(module.device) for t in zip(*items))
                policy = self.log_probabilities(module, x, y, mask)
                reference = self.reference_of(module, x, y, mask).to(policy.dtype)
                loss, _ = dpo_loss(policy[:, 0], policy[:, 1], reference[:, 0], reference[:, 1], cfg.dpo_beta,
                                   cfg.dpo_label_smoothing)
                total += loss.item() * len(items)
        finally:
            module.model.train(training)
        return total / n

    def check_validation_data(self, data) -> None:
        try:
            check_pairs(data, self.cfg.ctx_len)
        except ValueError as e:
            raise ValueError(f"--val_data: {e}") from None

    def on_fit_start(self, module) -> None:
        if self.cfg.ref_precompute:
            self.reference = self.precompute(module)

    @torch.no_grad()
    def precompute(self, module) -> torch.Tensor:
        """(pairs, 2): every pair's reference log-probabilities. Rank r takes the pairs r, r + world, ... (every
        rank the same number of forwards, as ZeRO-3's collective gathers need), then all ranks gather them."""
        cfg, trainer = self.cfg, module.trainer
        start = time.time()
        n, world, rank = module.data.num_documents, trainer.world_size, trainer.global_rank
        per_rank = -(-n // world)
        mine = [min(rank + world * k, n - 1) for k in range(per_rank)]          # the last pair repeats as padding
        training = module.model.training
        module.model.eval()
        try:
            values = []
            for at in range(0, per_rank, cfg.micro_bsz):
                items = [pair_sample(module.data, d, cfg.ctx_len) for d in mine[at:at + cfg.micro_bsz]]
                x, y, mask = (torch.stack(t).to(module.device) for t in zip(*items))
                values.append(self.reference_of(module, x, y, mask).float())
        finally:
            module.model.train(training)
        local = torch.cat(values)                                               # (per_rank, 2)
        gathered = trainer.strategy.all_gather(local) if world > 1 else local[None]
        gathered = gathered.reshape(world, per_rank, 2).cpu()
        table = torch.empty(n, 2)
        for r in range(world):
            for k in range(per_rank):
                d = r + world * k
                if d < n:
                    table[d] = gathered[r, k]
        if trainer.is_global_zero:
            print(f"dpo: reference log-probabilities of {n} pairs precomputed in {time.time() - start:.1f}s",
                  file=sys.stderr, flush=True)
        return table
