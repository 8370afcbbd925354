"""How every command ends: a result, or one line on stderr and exit status 2.

Bad values, missing or damaged files, full or read-only disks, a Ctrl-C and a SIGTERM all end as one
line that names the flag or the file (the exceptions' own messages say what), never a traceback.
While the command runs, SIGTERM takes Ctrl-C's path (a KeyboardInterrupt), so what it was writing
is cleaned up on the way out (utils/atomic.py) instead of being left behind by the default action.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Callable, Iterator

from .atomic import WriteError


@contextlib.contextmanager
def sigterm_interrupts(received: list[int]) -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt (once; a repeat while stopping is ignored, so it cannot cut the
    clean-up short) and is recorded in `received`. The previous handler is back afterwards. Only the
    main thread can take signals; elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigterm(signum, frame):
        received.append(signum)
        if len(received) == 1:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_command(prog: str, body: Callable[[], int | None], interrupted: str = "nothing was written",
                sigterm: bool = True) -> int:
    """body() -> its exit status (None: 0); the errors of bad input -> one line and 2. `sigterm`: SIGTERM
    stops the body as Ctrl-C does (a command with its own stop handling, train.py, passes False)."""
    received: list[int] = []
    try:
        with sigterm_interrupts(received) if sigterm else contextlib.nullcontext():
            return body() or 0
    except (ValueError, FileNotFoundError, WriteError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
    except OSError as e:                                 # a file read or written, named by the system
        where = f"{e.filename}: " if e.filename else ""
        print(f"{prog}: error: {where}{e.strerror or e}", file=sys.stderr)
    except KeyboardInterrupt:
        if not received:
            print(f"{prog}: interrupted; {interrupted}", file=sys.stderr)
        else:                                            # "stopped by SIGTERM; stopped" says it twice
            print(f"{prog}: stopped by SIGTERM" + ("" if interrupted == "stopped" else f"; {interrupted}"),
                  file=sys.stderr)
    return 2
