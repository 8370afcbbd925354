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
        with pytest.raises(StopNow):                             # a second Ctrl-C: at once
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        stop.uninstall()
    assert signal.getsignal(signal.SIGINT) is before
