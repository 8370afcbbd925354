"""Lightning callbacks of the trainer: the training log and the checkpoints.

TrainingLog    per optimizer step: loss (mean over micro-batches and ranks), lr, tokens/s
               on the progress bar and as a row of proj_dir/metrics.csv (with val_loss where
               Validation ran); loss.png at the end.
Validation     --val_data: eval.py's loss on held-out data every --val_every steps and at the end.
Checkpointing  every `save_every` steps, at the end, and when asked to stop (Ctrl-C):
               the module's weights (RWKVTrainingModule.write_weights) + DeepSpeed's training
               state, written whole or not at all, and only when the weights give a finite loss
               on the next step's data (so a resumed run can take that step).
GradientCheck  at a run's first step: every trainable gradient exactly zero -> stop and say why.
StopRequest    Ctrl-C / SIGTERM -> stop at the next step boundary, after a checkpoint.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import signal
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar

from ..utils.atomic import WriteError, atomic_save_png, atomic_write_text, writing
from .loss import NonFiniteLoss, NothingToLearn
from .run_dir import RUN_CONFIG, TRAINER_STATE, checkpoint_name, checkpoints

METRICS_COLUMNS = ["step", "loss", "lr", "tokens_per_s", "tokens", "elapsed_s", "val_loss"]
REQUIRED_COLUMNS = METRICS_COLUMNS[:-1]          # val_loss is empty where no validation ran (or none was asked)


class StopNow(BaseException):
    """A second Ctrl-C: stop at once. Not a KeyboardInterrupt, which Lightning turns into exit status 1."""


class StopRequest:
    """Ctrl-C (SIGINT) or SIGTERM asks the run to stop at the next step boundary, after
    saving a checkpoint. A second Ctrl-C interrupts at once (StopNow)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict = {}

    def install(self) -> None:
        def handler(signum, frame):
            if self.requested:
                raise StopNow
            self.requested = True
            print(f"\n[{signal.Signals(signum).name}] stopping after this step, once a checkpoint is saved "
                  f"(press Ctrl-C again to stop at once)", flush=True)
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, handler)

    def uninstall(self) -> None:
        """Give the signals back to whoever had them (the run may live inside a larger program)."""
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}


class TrainingLog(L.Callback):
    def __init__(self, proj_dir: Path, tokens_per_step: int, resume_step: int = 0):
        self.path = Path(proj_dir) / "metrics.csv"
        self.png = Path(proj_dir) / "loss.png"
        self.tokens_per_step = tokens_per_step
        self.resume_step = resume_step
        self._step_start = None
        self._run_start = None
        self.rows: list[dict] = []

    def on_train_start(self, trainer, pl_module) -> None:
        self._run_start = self._step_start = time.time()
        if trainer.is_global_zero:
            kept = []
            if self.resume_step and self.path.exists():       # continue the curve; drop steps past the checkpoint
                kept = [r for r in csv.DictReader(io.StringIO(self.path.read_text()))
                        if int(r["step"]) <= self.resume_step]
            self.rows = [{k: r.get(k) or "" for k in METRICS_COLUMNS} for r in kept]
            if self.rows:                                      # elapsed_s goes on from the resumed step's
                self._run_start -= float(self.rows[-1]["elapsed_s"])
            self._rewrite()

    def _rewrite(self) -> None:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=METRICS_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.path, out.getvalue())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if (batch_idx + 1) % trainer.accumulate_grad_batches:
            return                                              # not an optimizer step yet
        step = trainer.global_step
        now = time.time()
        loss = pl_module.step_loss                              # read once per step by the module
        lr = pl_module.lr_used                                  # the lr of the step just taken
        tokens_per_s = self.tokens_per_step / max(now - self._step_start, 1e-9)
        self._step_start = now
        pl_module.log("lr", lr, prog_bar=True, rank_zero_only=True)
        pl_module.log("tok/s", round(tokens_per_s), prog_bar=True, rank_zero_only=True)
        if trainer.is_global_zero:
            row = {"step": step, "loss": f"{loss:.6f}", "lr": f"{lr:.6g}", "tokens_per_s": f"{tokens_per_s:.1f}",
                   "tokens": step * self.tokens_per_step, "elapsed_s": f"{now - self._run_start:.2f}",
                   "val_loss": f"{pl_module.val_losses[step]:.6f}" if step in pl_module.val_losses else ""}
            self.rows.append(row)
            with writing(self.path), open(self.path, "a") as f:
                csv.DictWriter(f, fieldnames=METRICS_COLUMNS, lineterminator="\n").writerow(row)

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero and self.rows:
            plot_losses(self.rows, self.png)


class ProgressBar(TQDMProgressBar):
    """Lightning's bar with loss and lr to 4 significant digits and tokens/s as a whole number."""

    def get_metrics(self, trainer, pl_module) -> dict:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        for key, fmt in (("loss", "{:.4g}"), ("val_loss", "{:.4g}"), ("lr", "{:.4g}"), ("tok/s", "{:,.0f}")):
            if key in metrics:
                metrics[key] = fmt.format(float(metrics[key]))
        return metrics


def plot_losses(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    steps = [int(r["step"]) for r in rows]
    losses = [float(r["loss"]) for r in rows]
    validated = [(int(r["step"]), float(r["val_loss"])) for r in rows if r.get("val_loss")]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, losses, lw=1, label="loss")
    if validated:
        ax.plot(*zip(*validated), "o-", lw=1.5, label="val_loss")
    if len(losses) >= 20:
        k = max(len(losses) // 20, 2)
        smooth = [sum(losses[max(0, i - k + 1):i + 1]) / len(losses[max(0, i - k + 1):i + 1]) for i in range(len(losses))]
        ax.plot(steps, smooth, lw=2, label=f"mean of {k}")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    atomic_save_png(fig, path)
    plt.close(fig)


class Validation(L.Callback):
    """eval.py's evaluation (src/infer/evaluate.py) of the model being trained on --val_data, after every
    --val_every optimizer steps and after the last, recorded in the module's `val_losses` (metrics.csv,
    the progress bar, loss.png). It runs on rank 0 alone, except under ZeRO-3, where every rank holds a
    part of each weight and all must take part in the forward. Dropout is off and the RNG is restored
    afterwards, so a run with validation trains exactly as one without."""

    def __init__(self, data, ctx_len: int, data_type: str, every: int, total_steps: int, windows: int | None,
                 all_ranks: bool):
        self.data, self.ctx_len, self.data_type = data, ctx_len, data_type
        self.every, self.total_steps, self.windows, self.all_ranks = every, total_steps, windows, all_ranks

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if (batch_idx + 1) % trainer.accumulate_grad_batches:
            return
        step = trainer.global_step
        if step % self.every and step != self.total_steps:
            return
        if not (trainer.is_global_zero or self.all_ranks):
            return
        from ..infer.evaluate import evaluate
        import torch
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() and pl_module.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            result = evaluate(pl_module.model, self.data, self.ctx_len, self.data_type, self.windows)
        pl_module.val_losses[step] = result["loss"]
        if trainer.is_global_zero:
            pl_module.log("val_loss", result["loss"], prog_bar=True, rank_zero_only=True)


class Checkpointing(L.Callback):
    """Writes checkpoint-NNNNNN/: the module's weights (its `write_weights(directory, step)`, called on
    every rank) and trainer_state/ (DeepSpeed's shards, the optimizer, the data position). Whether
    any rank was asked to stop comes from the module (`stop_agreed`), which learns it in the same
    reduction as the step's loss."""

    def __init__(self, proj_dir: Path, save_every: int, total_steps: int, keep_trainer_states: int):
        self.proj_dir = Path(proj_dir)
        self.save_every = save_every
        self.total_steps = total_steps
        self.keep = keep_trainer_states
        self.last_saved = -1

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if (batch_idx + 1) % trainer.accumulate_grad_batches:
            return
        step = trainer.global_step
        stop = pl_module.stop_agreed
        if step % self.save_every == 0 or step >= self.total_steps or stop:
            self.save(trainer, pl_module, step, keep_state=stop)
        if stop:
            trainer.should_stop = True

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


class GradientCheck(L.Callback):
    """At the first optimizer step of a run (or of a resumed run): if DeepSpeed's global gradient norm
    is exactly zero, no trainable parameter can change, however long the run; stop and say why."""

    def __init__(self) -> None:
        self.checked = False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.checked or (batch_idx + 1) % trainer.accumulate_grad_batches:
            return
        self.checked = True
        engine = getattr(trainer.strategy, "deepspeed_engine", None)
        norm = engine.get_global_grad_norm() if engine is not None else None
        if norm is not None and float(norm) == 0.0:
            peft = pl_module.cfg.peft
            if peft is not None and peft.method == "pissa":
                why = ("PiSSA starts from the adapted weights' singular vectors, all zero where those weights are "
                       "zero (RWKV-LM's random init zeroes att.output, ffn.receptance and ffn.value, which silences "
                       "every other layer too): fine-tune a trained base (--load_model) or use another method "
                       "(--peft bone, lora)")
            elif peft is not None and peft.method == "state":
                why = ("the initial states reach the loss only through each layer's att.output weight, which "
                       "RWKV-LM's random init makes zero: state-tune a trained base (--load_model)")
            else:
                why = ("no trainable tensor reaches the loss through a non-zero path (the adapted or trained "
                       "layers feed only weights that are zero, or every target token is masked out): check "
                       "--peft_targets, --train_parts, the base model and the data")
            raise NothingToLearn(f"every trainable parameter got an exactly zero gradient at step "
                                 f"{trainer.global_step}, so training cannot change the model: {why}")
