"""A run's checkpoints: checkpoint-NNNNNN/ written whole or not at all, and only with weights whose
loss on the next step's data is finite (so a resumed run can take that step)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..utils.atomic import WriteError, atomic_write_text, writing
from .loss import NonFiniteLoss
from .run_dir import RUN_CONFIG, TRAINER_STATE, checkpoint_name, checkpoints


class Checkpointing:
    """Writes checkpoint-NNNNNN/ every `save_every` steps, at the end, and when asked to stop: the module's
    weights (its `write_weights(directory, step)`, called on every rank), the run's train_config.json and
    trainer_state/ (DeepSpeed's shards, the optimizer, the data position). Only the newest
    `keep_trainer_states` checkpoints keep their trainer_state/."""

    def __init__(self, proj_dir: Path, save_every: int, total_steps: int, keep_trainer_states: int):
        self.proj_dir = Path(proj_dir)
        self.save_every = save_every
        self.total_steps = total_steps
        self.keep = keep_trainer_states
        self.last_saved = -1

    def due(self, step: int) -> bool:
        return step % self.save_every == 0 or step >= self.total_steps

    def save(self, trainer, pl_module, step: int, keep_state: bool = False) -> None:
        """keep_state: this checkpoint keeps its trainer state even with --keep_trainer_states 0 (a run
        stopped on request is stopped to be resumed)."""
        if step == self.last_saved:
            return
        if not pl_module.next_step_is_finite():
            raise NonFiniteLoss(f"the weights after step {step} give a non-finite loss on the data of step {step + 1}, "
                                f"so they were not saved")
        final = self.proj_dir / checkpoint_name(step)
        tmp = self.proj_dir / f".{final.name}.tmp"
        if trainer.is_global_zero and tmp.exists():
            shutil.rmtree(tmp)
        trainer.strategy.barrier()
        try:
            with writing(final):
                trainer.save_checkpoint(tmp / TRAINER_STATE, weights_only=False)   # every rank: DeepSpeed's shards
                pl_module.write_weights(tmp, step)             # every rank (gathers), rank 0 writes
                if trainer.is_global_zero:
                    atomic_write_text(tmp / RUN_CONFIG, json.dumps(pl_module.cfg.to_dict(), indent=2) + "\n")
        except WriteError:
            if trainer.is_global_zero:
                shutil.rmtree(tmp, ignore_errors=True)
            raise
        trainer.strategy.barrier()
        if trainer.is_global_zero:
            if final.exists():
                shutil.rmtree(final)
            tmp.replace(final)
            keep = max(self.keep, 1) if keep_state else self.keep
            for old_step, old in checkpoints(self.proj_dir)[:-keep or None]:
                shutil.rmtree(old / TRAINER_STATE, ignore_errors=True)
            print(f"saved {final}", flush=True)
        trainer.strategy.barrier()
        self.last_saved = step
