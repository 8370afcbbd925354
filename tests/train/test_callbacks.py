"""src/train/callbacks.py: signal handling, the metrics log across a resume, the loss plot."""

import csv
import os
import signal
import types

import pytest

from src.train.callbacks import METRICS_COLUMNS, ProgressBar, StopNow, StopRequest, TrainingLog, plot_losses


def test_stop_request_catches_and_gives_back_signals():
    before = signal.getsignal(signal.SIGINT)
    stop = StopRequest()
    stop.install()
    try:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested
        with pytest.raises(StopNow):                             # a second Ctrl-C: at once
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        stop.uninstall()
    assert signal.getsignal(signal.SIGINT) is before


def test_metrics_continue_from_the_resumed_step(tmp_path):
    rows = [{"step": s, "loss": 10 - s, "lr": 1e-3, "tokens_per_s": 5.0, "tokens": 64 * s, "elapsed_s": s}
            for s in range(1, 8)]
    with open(tmp_path / "metrics.csv", "w") as f:
        w = csv.DictWriter(f, fieldnames=METRICS_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    log = TrainingLog(tmp_path, tokens_per_step=64, resume_step=4)   # steps 5..7 were lost with the kill
    log.on_train_start(types.SimpleNamespace(is_global_zero=True), None)
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
