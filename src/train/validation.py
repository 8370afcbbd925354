"""--val_data during training: eval.py's loss (src/infer/evaluate.py) on held-out data every
--val_every optimizer steps and at the last, without changing the training; an objective with a loss of
its own (DPO) validates with it (its `validate`)."""

from __future__ import annotations


class Validation:
    """eval.py's evaluation of the model being trained on --val_data, after every --val_every optimizer
    steps and after the last, recorded in the module's `val_losses` (metrics.csv, the progress bar,
    loss.png). It runs on rank 0 alone, except under ZeRO-3, where every rank holds a part of each
    weight and all must take part in the forward. Dropout is off and the RNG is restored afterwards,
    so a run with validation trains exactly as one without. --head_chunk chunks its logits too."""

    def __init__(self, data, ctx_len: int, data_type: str, every: int, total_steps: int, windows: int | None,
                 all_ranks: bool, head_chunk: int = 0):
        self.data, self.ctx_len, self.data_type = data, ctx_len, data_type
        self.every, self.total_steps, self.windows, self.all_ranks = every, total_steps, windows, all_ranks
        self.head_chunk = head_chunk

    def due(self, step: int) -> bool:
        return step % self.every == 0 or step == self.total_steps

    def run(self, trainer, pl_module, step: int) -> None:
        """After optimizer step `step`: validate if it is due and this rank takes part."""
        if not self.due(step) or not (trainer.is_global_zero or self.all_ranks):
            return
        from ..infer.evaluate import evaluate
        import torch
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() and pl_module.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            validate = getattr(pl_module.objective, "validate", None)      # an objective's own held-out loss
            if validate is not None:
                result = {"loss": validate(pl_module, self.data, self.windows)}
            else:
                result = evaluate(pl_module.model, self.data, self.ctx_len, self.data_type, self.windows,
                                  head_chunk=self.head_chunk)
        pl_module.val_losses[step] = result["loss"]
        if trainer.is_global_zero:
            pl_module.log("val_loss", result["loss"], prog_bar=True, rank_zero_only=True)
