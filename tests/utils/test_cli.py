"""src/utils/cli.py: how a command ends on Ctrl-C and SIGTERM."""

import contextlib
import os
import signal

import pytest

from src.utils.cli import run_command


@pytest.mark.parametrize("signum, line", [
    (signal.SIGTERM, "merge.py: stopped by SIGTERM; nothing was written"),
    (signal.SIGINT, "merge.py: interrupted; nothing was written"),
])
def test_a_stop_signal_is_one_line_and_status_2(capsys, signum, line):
    before = signal.getsignal(signal.SIGTERM)
    ran_on = []

    def body():
        ran_on.append(signum)
        os.kill(os.getpid(), signum)
        raise AssertionError(f"{signum} did not stop the command")

    with sigint_as_from_a_terminal():
        assert run_command("merge.py", body) == 2
    assert ran_on == [signum]
    assert capsys.readouterr().err.splitlines() == [line]
    assert signal.getsignal(signal.SIGTERM) is before                 # given back


@contextlib.contextmanager
def sigint_as_from_a_terminal():
    """Ctrl-C reaches a command as Python's KeyboardInterrupt, which Python sets up at start-up only when
    SIGINT is not ignored; tests run as a background job of a script inherit it ignored (and a command
    started so ignores Ctrl-C, as Python does). Give the test what a command started from a terminal has."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def test_generate_is_not_told_twice_that_it_stopped(capsys):
    assert run_command("generate.py", lambda: os.kill(os.getpid(), signal.SIGTERM), interrupted="stopped") == 2
    assert capsys.readouterr().err.splitlines() == ["generate.py: stopped by SIGTERM"]


def test_a_command_with_its_own_stop_handling_keeps_sigterm(capsys):
    """train.py passes sigterm=False: its StopRequest, not run_command, decides what SIGTERM does."""
    before = signal.getsignal(signal.SIGTERM)
    inside = []
    assert run_command("train.py", lambda: inside.append(signal.getsignal(signal.SIGTERM)), sigterm=False) == 0
    assert inside == [before]
    with_it = []
    assert run_command("eval.py", lambda: with_it.append(signal.getsignal(signal.SIGTERM))) == 0
    assert with_it[0] is not before and callable(with_it[0])
