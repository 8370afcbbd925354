"""What a run optimises: the objective behind --objective, one small interface and one registry.

    lm    next-token cross-entropy on binidx data (--data_type binidx | pad | sft): this module
    dpo   Direct Preference Optimization on preference pairs: src/align/dpo.py
    grpo  Group Relative Policy Optimization on prompts, sampling and scoring its own data: src/align/grpo.py

The training module (module.py) asks its objective for the run's samples (`dataset`, `collate`), for each
micro-batch's loss and the metrics that go with it (`loss`: metrics are averaged over the optimizer step
and over ranks with the loss, then logged to metrics.csv, the progress bar and loss.png), and, before a
checkpoint, whether the weights give a finite loss (`finite`). Everything else (the optimizer, the
schedule, checkpoints, resume, DeepSpeed, infctx) is the same for every objective.
"""

from __future__ import annotations

import torch

from ..data import BinIdx, TokenDataset
from .infctx import sample_loss


class Objective:
    """The interface; `LanguageModel` below is the plain case."""

    name = "base"
    metrics: tuple[str, ...] = ()          # per-step metrics besides the loss, in metrics.csv's column order
    shown: tuple[str, ...] = ()            # those shown on the progress bar

    def __init__(self, cfg):
        self.cfg = cfg

    def sequences_per_sample(self) -> int:
        """Sequences of ctx_len tokens a sample trains on (tokens/s counts them)."""
        return 1

    def check_data(self, model_config) -> None:
        """Before anything is loaded: --data_file holds what this objective trains on (one-line ValueError)."""
        raise NotImplementedError

    def dataset(self, module, first_step: int, steps: int) -> torch.utils.data.Dataset:
        raise NotImplementedError

    def collate(self, items: list):
        """Items -> a micro-batch (torch's default stacking unless an objective says otherwise)."""
        return torch.utils.data.default_collate(items)

    def on_fit_start(self, module) -> None:
        """Once training has started, before the first step (DPO's precomputed references)."""

    def loss(self, module, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """A micro-batch -> (its loss, {metric: scalar tensor} for `metrics`)."""
        raise NotImplementedError

    def check_validation_data(self, data) -> None:
        """Before anything is loaded: --val_data (binidx, its vocabulary already checked) holds what `validate`
        reads; a one-line ValueError otherwise."""
        raise ValueError(f"--val_data: --objective {self.name} has no held-out loss")

    def validate(self, module, data, windows: int | None) -> float:
        """The held-out loss on --val_data (the first `windows` windows or pairs; None: all), dropout off."""
        raise NotImplementedError

    def gradient_expected(self, module) -> bool:
        """Whether the step just taken must have reached some trainable parameter (the run's first such step
        is checked: an exactly zero gradient there means training cannot change the model)."""
        return True

    @torch.no_grad()
    def finite(self, module, batch) -> bool:
        """Whether the model's loss on this micro-batch is finite (dropout off, no gradient)."""
        return bool(torch.isfinite(self.loss(module, batch)[0]))


class LanguageModel(Objective):
    """Cross-entropy on the counted targets, with L2Wrap (loss.py), in infctx chunks with --chunk_ctx."""

    name = "lm"

    def check_data(self, model_config) -> None:
        data = binidx_data(self.cfg, model_config)
        TokenDataset(data, self.cfg.data_type, self.cfg.ctx_len)            # enough data for one sample?

    def dataset(self, module, first_step: int, steps: int) -> TokenDataset:
        cfg, trainer = self.cfg, module.trainer
        return TokenDataset(module.data, cfg.data_type, cfg.ctx_len, seed=cfg.seed, micro_bsz=cfg.micro_bsz,
                            rank=trainer.global_rank, world_size=trainer.world_size,
                            first_batch=first_step * cfg.accumulate_grad_batches,
                            num_batches=steps * cfg.accumulate_grad_batches)

    def check_validation_data(self, data) -> None:
        from ..infer.evaluate import response_tokens, windows
        cfg = self.cfg
        spans = windows(data.num_tokens, cfg.ctx_len, cfg.val_windows or None)
        if not spans:
            raise ValueError(f"--val_data {cfg.val_data} holds {data.num_tokens} tokens: too few to predict one")
        if cfg.data_type == "sft" and not response_tokens(data)[1:spans[-1][1]].any():
            raise ValueError(f"--val_data {cfg.val_data}: no response token in its windows to validate on (sft data)")

    def validate(self, module, data, windows: int | None) -> float:
        """eval.py's loss (src/infer/evaluate.py): windows of ctx_len, sft responses only with --data_type sft."""
        from ..infer.evaluate import evaluate
        cfg = self.cfg
        return evaluate(module.model, data, cfg.ctx_len, "sft" if cfg.data_type == "sft" else "binidx", windows,
                        head_chunk=cfg.head_chunk)["loss"]

    def loss(self, module, batch):
        x, y, mask = batch
        cfg = self.cfg
        l2wrap = cfg.l2wrap and module.model.training
        return sample_loss(module.model, x, y, mask, l2wrap, cfg.chunk_ctx, module.dropout_draw if
                           module.model.training else None, cfg.head_chunk), {}


# --objective name -> (module, class), imported when chosen (src/align imports this package)
OBJECTIVE_CLASSES = {"lm": (__name__, "LanguageModel"), "dpo": ("src.align.dpo_objective", "DPO"),
                     "grpo": ("src.align.grpo_objective", "GRPO")}


def objective_class(name: str) -> type[Objective]:
    """The class of --objective `name`."""
    import importlib
    if name not in OBJECTIVE_CLASSES:
        raise ValueError(f"--objective {name!r} is not one of {', '.join(OBJECTIVE_CLASSES)}")
    module, cls = OBJECTIVE_CLASSES[name]
    return getattr(importlib.import_module(module), cls)


def make_objective(cfg) -> Objective:
    return objective_class(cfg.objective)(cfg)


def binidx_data(cfg, model_config) -> BinIdx:
    """--data_file's binidx data, its tokens checked against the model's vocabulary."""
    if not cfg.data_file:
        raise ValueError("--data_file PREFIX is required (make one with scripts/make_data.sh)")
    data = BinIdx(cfg.data_file)
    data.check_vocabulary(model_config.vocab_size, f"--data_file {cfg.data_file}")
    return data


def training_data(cfg):
    """What the module reads its samples from: binidx data (lm, dpo) or the prompt file (grpo, read by its
    objective)."""
    return BinIdx(cfg.data_file) if cfg.objective != "grpo" else None
