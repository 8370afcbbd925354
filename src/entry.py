"""The top-level scripts (train.py, merge.py, generate.py, eval.py) start here: `run("src.x.y", "name.py")`
imports the module's `main` and exits with its status. Importing torch takes seconds; a Ctrl-C then
is one line and status 2, as everywhere else, not a traceback. Imports nothing heavy itself."""

from __future__ import annotations

import importlib
import sys


def run(module: str, prog: str) -> None:
    try:
        main = importlib.import_module(module).main
    except KeyboardInterrupt:
        print(f"{prog}: interrupted while starting; nothing was written", file=sys.stderr)
        sys.exit(2)
    sys.exit(main())
