"""--val_data during training: the objective's held-out loss (src/train/objective.py: eval.py's loss for
the language model, DPO's loss on held-out pairs) every --val_every optimizer steps and at the last,
without changing the training."""

from __future__ import annotations


class Validation:
    """The objective's held-out loss of the model being trained on --val_data, after every --val_every
    optimizer steps and after the last, recorded in the module's `val_losses` (metrics.csv, the progress bar,
    loss.png). It runs on rank 0 alone, except under ZeRO-3, where every rank holds a part of each
    weight and all must take part in the forward. Dropout is off and the RNG is restored afterwards,
    so a run with validation trains exactly as one without."""

    def __init__(self, data, every: int, total_steps: int, windows: int | None, all_ranks: bool):
        self.data = data
        self.every, self.total_steps, self.windows, self.all_ranks = every, total_steps, windows, all_ranks

    def due(self, step: int) -> bool:
        return step % self.every == 0 or step == self.total_steps

    def run(self, trainer, pl_module, step: int) -> None:
        """After optimizer step `step`: validate if it is due and this rank takes part."""
        if not self.due(step) or not (trainer.is_global_zero or self.all_ranks):
            return
        import torch
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() and pl_module.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            loss = pl_module.objective.validate(pl_module, self.data, self.windows)
        pl_module.val_losses[step] = loss
        if trainer.is_global_zero:
            pl_module.log("val_loss", loss, prog_bar=True, rank_zero_only=True)
