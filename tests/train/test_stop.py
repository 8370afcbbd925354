"""Stopping a run on request (Ctrl-C, SIGTERM) at any moment of a step: the run ends with a checkpoint of
the last finished step, says so, exits 0 and `--resume latest` continues from it; it never says it
stopped after a checkpoint that does not exist.

The signal is sent by the run to itself from inside a chosen hook of step N, so the moment is exact."""

from __future__ import annotations

import os
import signal

import lightning as L
import pytest

import src.train.checkpointing as checkpointing_py
import src.train.trainer as trainer_py
from src.train import main
from tests.train.test_trainer import as_argv, flags, losses

STOP_AT = 3                                                     # the step during which the signal arrives


class SignalDuringStep(L.Callback):
    """Sends `signum` to this process once, from `hook` of optimizer step `step` (1-based)."""

    def __init__(self, signum: int, hook: str, step: int):
        self.signum, self.hook, self.step = signum, hook, step
        self.sent_at: int | None = None
        setattr(self, hook, self._maybe_send)

    def _maybe_send(self, trainer, *args, **kwargs) -> None:
        if self.sent_at is None and trainer.global_step == self.step - 1:   # step N is under way
            self.sent_at = trainer.global_step + 1
            os.kill(os.getpid(), self.signum)


def with_callback(monkeypatch, callback: L.Callback) -> None:
    run = trainer_py.run
    monkeypatch.setattr(trainer_py, "run", lambda cfg: run(cfg, (callback,)))


@pytest.mark.parametrize("signum, hook", [
    (signal.SIGTERM, "on_after_backward"),                      # after the step's reduction, before its end
    pytest.param(signal.SIGTERM, "on_before_optimizer_step", marks=pytest.mark.slow),
    pytest.param(signal.SIGINT, "on_after_backward", marks=pytest.mark.slow),
    pytest.param(signal.SIGTERM, "on_train_batch_start", marks=pytest.mark.slow),   # before the forward
])
def test_a_stop_signal_during_a_step_saves_that_step(tiny_fp32_checkpoint, sample_data, tmp_path, monkeypatch,
                                                     capsys, signum, hook):
    proj = tmp_path / "run"
    values = flags(tiny_fp32_checkpoint, sample_data, proj, epoch_steps=6, warmup_steps=1)   # saves at 6 only
    callback = SignalDuringStep(signum, hook, STOP_AT)
    with_callback(monkeypatch, callback)
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    assert main(as_argv(values)) == 0
    out = capsys.readouterr().out
    assert callback.sent_at == STOP_AT
    assert f"[{signal.Signals(signum).name}] stopping after this step, once a checkpoint is saved" in out
    assert f"saved {proj / f'checkpoint-{STOP_AT:06d}'}" in out
    assert f"stopped early at step {STOP_AT} in" in out and f"checkpoints, metrics.csv and loss.png in {proj}" in out
    assert sorted(p.name for p in proj.glob("checkpoint-*")) == [f"checkpoint-{STOP_AT:06d}"]
    assert (proj / f"checkpoint-{STOP_AT:06d}" / "trainer_state").is_dir()
    assert len(losses(proj)) == STOP_AT
    assert {s: signal.getsignal(s) for s in before} == before       # the handlers are given back
    if hook != "on_after_backward":
        return
    monkeypatch.undo()                                          # the resumed run goes on undisturbed
    assert main(as_argv({**values, "resume": "latest"})) == 0
    out = capsys.readouterr().out
    assert f"resuming from {proj / f'checkpoint-{STOP_AT:06d}'} (step {STOP_AT})" in out
    assert "finished step 6 in" in out
    assert len(losses(proj)) == 6 and (proj / "checkpoint-000006" / "trainer_state").is_dir()


def test_a_run_that_ends_without_a_checkpoint_of_its_last_step_says_so(tiny_fp32_checkpoint, sample_data, tmp_path,
                                                                        monkeypatch, capsys):
    """Never "stopped ... checkpoints in DIR" when the last step has none: here saving does nothing."""
    proj = tmp_path / "run"
    values = flags(tiny_fp32_checkpoint, sample_data, proj, epoch_steps=6, warmup_steps=1)
    monkeypatch.setattr(checkpointing_py.Checkpointing, "save", lambda self, *args, **kwargs: None)
    with_callback(monkeypatch, SignalDuringStep(signal.SIGTERM, "on_after_backward", STOP_AT))
    assert main(as_argv(values)) == 3
    captured = capsys.readouterr()
    assert "stopped early" not in captured.out and "finished" not in captured.out
    assert captured.err.strip() == (f"train.py: stopped at step {STOP_AT}, but no checkpoint of it was written; "
                                    f"there is none in {proj}: start again (without --resume, with --overwrite)")
