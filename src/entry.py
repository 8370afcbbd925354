"""The top-level scripts (train.py, merge.py, generate.py, eval.py) start here: `run("src.x.y", "name.py")`
imports the module's `main` and exits with its status. Importing torch takes seconds; a Ctrl-C or a
SIGTERM then is one line and status 2, as everywhere else, not a traceback. Imports nothing heavy itself.

A stop signal during the import is recorded by our own handler before anything else sees it, so it
counts even when a library imported on the way catches the KeyboardInterrupt it raises. Stop signals
left blocked by whoever started the process are unblocked once that handler is in place, so a signal
sent before the program could take it is delivered then, while starting.
"""

from __future__ import annotations

import importlib
import signal
import sys

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def run(module: str, prog: str) -> None:
    received: list[int] = []

    def on_stop(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt

    previous = {signum: signal.signal(signum, on_stop) for signum in STOP_SIGNALS}
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)     # a pending one arrives here
        main = importlib.import_module(module).main
    except KeyboardInterrupt:
        received.append(signal.SIGINT)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if received:
        how = "interrupted" if received[0] == signal.SIGINT else f"stopped by {signal.Signals(received[0]).name}"
        print(f"{prog}: {how} while starting; nothing was written", file=sys.stderr)
        sys.exit(2)
    sys.exit(main())
