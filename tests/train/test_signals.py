"""src/train/signals.py: Ctrl-C asks for a stop, a second one stops at once, the handlers are given back."""

import os
import signal

import pytest

from src.train.signals import StopNow, StopRequest


def test_stop_request_catches_and_gives_back_signals():
    before = signal.getsignal(signal.SIGINT)
    stop = StopRequest()
    stop.install()
    try:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested
        with pytest.raises(StopNow) as second:                   # a second Ctrl-C: at once
            os.kill(os.getpid(), signal.SIGINT)
        assert second.value.what == "a second Ctrl-C"
    finally:
        stop.uninstall()
    assert signal.getsignal(signal.SIGINT) is before


def test_a_second_sigterm_is_named_as_such(capsys):
    stop = StopRequest()
    stop.install()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        assert "(send SIGTERM again to stop at once)" in capsys.readouterr().out
        with pytest.raises(StopNow) as second:
            os.kill(os.getpid(), signal.SIGTERM)
        assert second.value.what == "a second SIGTERM"
    finally:
        stop.uninstall()


def test_lightning_installs_no_sigterm_handler_of_its_own():
    """Lightning's SIGTERM handler would end the run at the end of the batch, without our checkpoint: after
    Lightning installs its handlers, ours is the only one, and Lightning never sees the signal."""
    import lightning as L

    from src.train.signals import keep_lightning_off_sigterm
    before = signal.getsignal(signal.SIGTERM)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False)
    stop = StopRequest()
    stop.install()
    try:
        keep_lightning_off_sigterm(trainer, stop)
        trainer._signal_connector.register_signal_handlers()          # what Trainer.fit does as it starts
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested and not trainer.received_sigterm
        trainer._signal_connector.teardown()                          # what fit does as it ends
        assert signal.getsignal(signal.SIGTERM) == stop._handler
    finally:
        stop.uninstall()
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_lightning_without_its_signal_connector_is_named():
    from src.train.signals import keep_lightning_off_sigterm
    with pytest.raises(RuntimeError, match="a SIGTERM would end the run without a checkpoint"):
        keep_lightning_off_sigterm(object(), StopRequest())
