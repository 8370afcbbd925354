"""`python -m src.bench` runs the training table benchmark (src/bench/table.py)."""

import sys

from .table import main

sys.exit(main())
