"""How every command ends: a result, or one line on stderr and exit status 2.

Bad values, missing or damaged files, full or read-only disks and a Ctrl-C all end as one line
that names the flag or the file (the exceptions' own messages say what), never a traceback.
"""

from __future__ import annotations

import sys
from typing import Callable

from .atomic import WriteError


def run_command(prog: str, body: Callable[[], int | None], interrupted: str = "nothing was written") -> int:
    """body() -> its exit status (None: 0); the errors of bad input -> one line and 2."""
    try:
        return body() or 0
    except (ValueError, FileNotFoundError, WriteError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
    except OSError as e:                                 # a file read or written, named by the system
        where = f"{e.filename}: " if e.filename else ""
        print(f"{prog}: error: {where}{e.strerror or e}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; {interrupted}", file=sys.stderr)
    return 2
