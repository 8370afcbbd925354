"""Stopping a run on request: Ctrl-C or SIGTERM stops it at the end of the step under way, after a
checkpoint of that step (StopRequest); a second one stops it at once (StopNow).

Lightning has a SIGTERM handler of its own: it ends the run at the end of the batch by raising
SIGTERMException, without our checkpoint when the signal came after the step's reduction had read the
stop flag. `keep_lightning_off_sigterm` keeps ours the only one."""

from __future__ import annotations

import signal

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopNow(BaseException):
    """A second stop signal: stop at once. Not a KeyboardInterrupt, which Lightning turns into exit status 1."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def what(self) -> str:
        """How a message names the signal that stopped the run: "a second Ctrl-C", "a second SIGTERM"."""
        return "a second Ctrl-C" if self.signum == signal.SIGINT else f"a second {signal.Signals(self.signum).name}"


class StopRequest:
    """Ctrl-C (SIGINT) or SIGTERM asks the run to stop at the end of the step under way, after saving a
    checkpoint of it. A second stop signal interrupts at once (StopNow)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict = {}

    def _handler(self, signum, frame) -> None:
        if self.requested:
            raise StopNow(signum)
        self.requested = True
        again = "press Ctrl-C again" if signum == signal.SIGINT else f"send {signal.Signals(signum).name} again"
        print(f"\n[{signal.Signals(signum).name}] stopping after this step, once a checkpoint is saved "
              f"({again} to stop at once)", flush=True)

    def install(self) -> None:
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handler)

    def reclaim(self) -> None:
        """Take the stop signals back from whoever replaced our handler since `install` (keeping
        what `uninstall` gives back)."""
        for signum in self._previous:
            signal.signal(signum, self._handler)

    def uninstall(self) -> None:
        """Give the signals back to whoever had them (the run may live inside a larger program)."""
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}


def keep_lightning_off_sigterm(trainer, stop: StopRequest) -> None:
    """Lightning installs its signal handlers when `fit` starts (its SIGTERM one beside the handler then
    in place, which it also calls); right after, ours are made the only ones again, so a SIGTERM is a
    StopRequest and nothing else. Its other handlers (SLURM's requeue signal) stay. Lightning restores
    the handlers it found (ours) when fit ends."""
    connector = getattr(trainer, "_signal_connector", None)
    if connector is None or not callable(getattr(connector, "register_signal_handlers", None)):
        raise RuntimeError("this Lightning version installs its signal handlers elsewhere: a SIGTERM would end the "
                           "run without a checkpoint; update src/train/signals.py")
    register = connector.register_signal_handlers

    def register_then_reclaim() -> None:
        register()
        stop.reclaim()

    connector.register_signal_handlers = register_then_reclaim
