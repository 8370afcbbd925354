"""The Lightning callbacks of a training run: StepEnd, everything that follows an optimizer step in one
written order; the metrics log it keeps; the progress bar.

StepEnd        after each optimizer step (the module says when one ended), in this order:
                 1. validation (validation.py), before the log, whose row holds the step's val_loss
                 2. the log: loss, lr, tokens/s on the progress bar and as a row of proj_dir/metrics.csv
                 3. at the run's first step (whose objective expects a gradient), the zero-gradient check, before any checkpoint is written
                 4. the checkpoint (checkpointing.py) when one is due or a stop was asked for; then the stop
TrainingLog    metrics.csv (continued across a resume, rank 0 writes) and loss.png at the end.
ProgressBar    Lightning's bar with short numbers.
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar

from ..peft.config import PeftConfig
from ..peft.registry import STATE_METHOD, STATE_ZERO_GRADIENT_HINT, adapter_class
from ..utils.atomic import atomic_save_png, atomic_write_text, writing
from .checkpointing import Checkpointing
from .loss import NothingToLearn
from .validation import Validation

METRICS_COLUMNS = ["step", "loss", "lr", "tokens_per_s", "tokens", "elapsed_s", "val_loss"]
REQUIRED_COLUMNS = METRICS_COLUMNS[:-1]          # val_loss is empty where no validation ran (or none was asked)


class StepEnd(L.Callback):
    """Everything that follows an optimizer step, in the order of the module docstring. The step ended
    when the module's window of micro-batches closed (`between_steps`); whether it is the last, on request,
    the module says (`stop_here`)."""

    def __init__(self, training_log: TrainingLog, checkpointing: Checkpointing, validation: Validation | None = None):
        self.training_log = training_log
        self.checkpointing = checkpointing
        self.validation = validation
        self.gradients_checked = False
        self.stopped_at: int | None = None         # the step after which the run stopped on request

    def on_train_start(self, trainer, pl_module) -> None:
        self.training_log.start(trainer.is_global_zero)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not pl_module.between_steps:
            return                                              # inside an optimizer step's micro-batches
        step = trainer.global_step
        if self.validation is not None:
            self.validation.run(trainer, pl_module, step)
        self.training_log.record(trainer, pl_module, step)
        if not self.gradients_checked and pl_module.objective.gradient_expected(pl_module):
            self.gradients_checked = True
            check_gradients_reach_the_loss(trainer, pl_module)
        stop = pl_module.stop_here
        if stop or self.checkpointing.due(step):
            self.checkpointing.save(trainer, pl_module, step, keep_state=stop)
        if stop:
            self.stopped_at = step
            trainer.should_stop = True

    def on_train_end(self, trainer, pl_module) -> None:
        self.training_log.plot(trainer.is_global_zero)


class TrainingLog:
    """Per optimizer step: loss (mean over micro-batches and ranks), lr, tokens/s on the progress bar and
    as a row of proj_dir/metrics.csv (with val_loss where validation ran); loss.png at the end."""

    def __init__(self, proj_dir: Path, tokens_per_step: int, resume_step: int = 0, metrics: tuple[str, ...] = ()):
        self.columns = [*METRICS_COLUMNS[:-1], *metrics, METRICS_COLUMNS[-1]]    # the objective's metrics too
        self.metrics = metrics
        self.path = Path(proj_dir) / "metrics.csv"
        self.png = Path(proj_dir) / "loss.png"
        self.tokens_per_step = tokens_per_step
        self.resume_step = resume_step
        self._step_start = None
        self._run_start = None
        self.rows: list[dict] = []

    def start(self, is_global_zero: bool) -> None:
        self._run_start = self._step_start = time.time()
        if is_global_zero:
            kept = []
            if self.resume_step and self.path.exists():       # continue the curve; drop steps past the checkpoint
                kept = [r for r in csv.DictReader(io.StringIO(self.path.read_text()))
                        if int(r["step"]) <= self.resume_step]
            self.rows = [{k: r.get(k) or "" for k in self.columns} for r in kept]
            if self.rows:                                      # elapsed_s goes on from the resumed step's
                self._run_start -= float(self.rows[-1]["elapsed_s"])
            self._rewrite()

    def _rewrite(self) -> None:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=self.columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.path, out.getvalue())

    def record(self, trainer, pl_module, step: int) -> None:
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
                   "val_loss": f"{pl_module.val_losses[step]:.6f}" if step in pl_module.val_losses else "",
                   **{k: f"{pl_module.step_metrics[k]:.6f}" for k in self.metrics}}
            self.rows.append(row)
            with writing(self.path), open(self.path, "a") as f:
                csv.DictWriter(f, fieldnames=self.columns, lineterminator="\n").writerow(row)

    def plot(self, is_global_zero: bool) -> None:
        """loss.png of the rows so far (rank 0)."""
        if is_global_zero and self.rows:
            plot_losses(self.rows, self.png, self.metrics)


def plot_losses(rows: list[dict], path: Path, metrics: tuple[str, ...] = ()) -> None:
    """The loss (and val_loss) over the steps; with an objective's metrics, a second panel of them beside."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    steps = [int(r["step"]) for r in rows]
    losses = [float(r["loss"]) for r in rows]
    validated = [(int(r["step"]), float(r["val_loss"])) for r in rows if r.get("val_loss")]
    if metrics:
        fig, (ax, side) = plt.subplots(1, 2, figsize=(12, 4))
        for name in metrics:
            side.plot(steps, [float(r[name]) if r.get(name) else float("nan") for r in rows], lw=1.2, label=name)
        side.set_xlabel("optimizer step")
        side.grid(alpha=0.3)
        side.legend(fontsize=8)
    else:
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


class ProgressBar(TQDMProgressBar):
    """Lightning's bar with loss and lr to 4 significant digits and tokens/s as a whole number."""

    def get_metrics(self, trainer, pl_module) -> dict:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        for key, value in metrics.items():
            try:
                metrics[key] = ("{:,.0f}" if key == "tok/s" else "{:.4g}").format(float(value))
            except (TypeError, ValueError):
                pass
        return metrics


NO_PATH_TO_THE_LOSS = ("no trainable tensor reaches the loss through a non-zero path (the adapted or trained layers "
                       "feed only weights that are zero, or every target token is masked out): check --peft_targets, "
                       "--train_parts, the base model and the data")


def zero_gradient_reason(peft: PeftConfig | None) -> str:
    """Why every gradient can be exactly zero: the adapter method's own explanation (its class's
    `zero_gradient_hint`; state tuning's beside its name in the registry), else the general one."""
    if peft is None:
        hint = ""
    elif peft.method == STATE_METHOD:
        hint = STATE_ZERO_GRADIENT_HINT
    else:
        hint = adapter_class(peft.method).zero_gradient_hint
    return hint or NO_PATH_TO_THE_LOSS


def check_gradients_reach_the_loss(trainer, pl_module) -> None:
    """At the first optimizer step of a run (or of a resumed run): if DeepSpeed's global gradient norm
    is exactly zero, no trainable parameter can change, however long the run; stop and say why."""
    engine = getattr(trainer.strategy, "deepspeed_engine", None)
    norm = engine.get_global_grad_norm() if engine is not None else None
    if norm is not None and float(norm) == 0.0:
        raise NothingToLearn(f"every trainable parameter got an exactly zero gradient at step {trainer.global_step}, "
                             f"so training cannot change the model: {zero_gradient_reason(pl_module.cfg.peft)}")
