"""Stopping a run on request: Ctrl-C or SIGTERM stops it at the next step boundary, after a
checkpoint (StopRequest); a second Ctrl-C stops it at once (StopNow)."""

from __future__ import annotations

import signal


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
