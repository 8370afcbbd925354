"""python -m src.plan: the memory planner's command line (cli.py)."""

import sys

from .cli import main

sys.exit(main())
