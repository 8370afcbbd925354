"""src/train/callbacks.py: what follows an optimizer step and in which order, the zero-gradient check and its
reasons, the metrics log across a resume, the loss plot, the progress bar."""

import csv
import types

import pytest

from src.peft import PeftConfig
from src.peft.lora import LoraLinear
from src.train.callbacks import (METRICS_COLUMNS, NO_PATH_TO_THE_LOSS, ProgressBar, StepEnd, TrainingLog,
                                 check_gradients_reach_the_loss, plot_losses, zero_gradient_reason)
from src.train.loss import NothingToLearn
from src.train.objective import LanguageModel


class Part:
    """A stand-in for one of StepEnd's parts that records its calls in `calls`."""

    def __init__(self, name, calls, due=False):
        self.name, self.calls, self.is_due = name, calls, due

    def start(self, is_global_zero):
        self.calls.append(f"{self.name}.start")

    def run(self, trainer, pl_module, step):
        self.calls.append(f"{self.name} {step}")

    def record(self, trainer, pl_module, step):
        self.calls.append(f"{self.name} {step}")

    def due(self, step):
        return self.is_due

    def save(self, trainer, pl_module, step, keep_state=False):
        self.calls.append(f"{self.name} {step} keep_state={keep_state}")

    def plot(self, is_global_zero):
        self.calls.append(f"{self.name}.plot")


def fakes(grad_norm=1.0, between_steps=True, stop_here=False):
    engine = types.SimpleNamespace(get_global_grad_norm=lambda: grad_norm)
    trainer = types.SimpleNamespace(global_step=1, is_global_zero=True, should_stop=False,
                                    strategy=types.SimpleNamespace(deepspeed_engine=engine))
    module = types.SimpleNamespace(between_steps=between_steps, stop_here=stop_here,
                                   cfg=types.SimpleNamespace(peft=PeftConfig("bone", 8)),
                                   objective=LanguageModel(None))
    return trainer, module


def test_step_end_runs_its_parts_in_order_once_per_step():
    calls = []
    ending = StepEnd(Part("log", calls), Part("checkpoint", calls, due=True), Part("validation", calls))
    trainer, module = fakes(between_steps=False)
    ending.on_train_batch_end(trainer, module, None, None, 0)          # a micro-batch inside a step
    assert calls == []
    module.between_steps = True
    ending.on_train_batch_end(trainer, module, None, None, 1)
    assert calls == ["validation 1", "log 1", "checkpoint 1 keep_state=False"] and not trainer.should_stop
    ending.on_train_end(trainer, module)
    assert calls[-1] == "log.plot"


def test_a_stop_saves_a_checkpoint_that_keeps_its_state_then_stops():
    calls = []
    ending = StepEnd(Part("log", calls), Part("checkpoint", calls, due=False))
    trainer, module = fakes(stop_here=True)
    assert ending.stopped_at is None
    ending.on_train_batch_end(trainer, module, None, None, 0)
    assert calls == ["log 1", "checkpoint 1 keep_state=True"] and trainer.should_stop and ending.stopped_at == 1


@pytest.mark.parametrize("agreed, requested, world_size, stop", [
    (False, False, 1, False),
    (True, True, 1, True),           # asked before the step's reduction: every rank agreed in it
    (False, True, 1, True),          # asked after it (in the backward, the optimizer step): this step still ends it
    (False, True, 2, False),         # ... on one of several ranks: agreed at the next step's reduction
    (True, False, 2, True),          # another rank was asked
])
def test_which_step_end_is_a_stop(agreed, requested, world_size, stop):
    from src.train.module import RWKVTrainingModule
    from src.train.signals import StopRequest
    request = StopRequest()
    request.requested = requested
    module = types.SimpleNamespace(stop=request, stop_agreed=agreed,
                                   trainer=types.SimpleNamespace(world_size=world_size))
    assert RWKVTrainingModule.stop_here.fget(module) is stop


def test_nothing_to_learn_stops_before_the_checkpoint_at_the_first_step_only():
    calls = []
    ending = StepEnd(Part("log", calls), Part("checkpoint", calls, due=True))
    trainer, module = fakes(grad_norm=0.0)
    with pytest.raises(NothingToLearn, match="every trainable parameter got an exactly zero gradient at step 1"):
        ending.on_train_batch_end(trainer, module, None, None, 0)
    assert calls == ["log 1"]
    ending.on_train_batch_end(trainer, module, None, None, 1)           # checked at the first step alone
    assert calls[-1] == "checkpoint 1 keep_state=False"


def test_a_non_zero_gradient_or_no_deepspeed_passes():
    trainer, module = fakes(grad_norm=1e-30)
    check_gradients_reach_the_loss(trainer, module)
    trainer.strategy = types.SimpleNamespace()
    check_gradients_reach_the_loss(trainer, module)


def test_zero_gradient_reasons_come_with_the_method(monkeypatch):
    assert "PiSSA starts from the adapted weights' singular vectors" in zero_gradient_reason(PeftConfig("pissa", 8))
    assert "initial states reach the loss only through" in zero_gradient_reason(PeftConfig("state"))
    assert zero_gradient_reason(PeftConfig("bone", 8)) == NO_PATH_TO_THE_LOSS
    assert zero_gradient_reason(None) == NO_PATH_TO_THE_LOSS
    monkeypatch.setattr(LoraLinear, "zero_gradient_hint", "LoRA's own reason")   # any method's class gives its own
    assert zero_gradient_reason(PeftConfig("lora", 8)) == "LoRA's own reason"


def test_metrics_continue_from_the_resumed_step(tmp_path):
    rows = [{"step": s, "loss": 10 - s, "lr": 1e-3, "tokens_per_s": 5.0, "tokens": 64 * s, "elapsed_s": s}
            for s in range(1, 8)]
    with open(tmp_path / "metrics.csv", "w") as f:
        w = csv.DictWriter(f, fieldnames=METRICS_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    log = TrainingLog(tmp_path, tokens_per_step=64, resume_step=4)   # steps 5..7 were lost with the kill
    log.start(is_global_zero=True)
    kept = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert [int(r["step"]) for r in kept] == [1, 2, 3, 4]


def test_loss_plot(tmp_path):
    rows = [{"step": s, "loss": 11 - 0.1 * s} for s in range(1, 30)]
    plot_losses(rows, tmp_path / "loss.png")
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["loss.png"]


def test_progress_bar_formats(monkeypatch):
    from lightning.pytorch.callbacks import TQDMProgressBar
    monkeypatch.setattr(TQDMProgressBar, "get_metrics",
                        lambda self, t, m: {"loss": 8.123456, "lr": 0.000123456, "tok/s": 1234.6, "v_num": 3})
    assert ProgressBar().get_metrics(None, None) == {"loss": "8.123", "lr": "0.0001235", "tok/s": "1,235"}
