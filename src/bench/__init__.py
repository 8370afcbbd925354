"""Benchmarks, whose results go into docs/benchmarks.md with device, command and date.

    wkv.py      the WKV6 operator: each backend's forward and forward+backward (scripts/bench_wkv.sh)
    table.py    the paper's LoRA / Bone / Bat training table with our trainer (scripts/bench_table.sh)
    device.py   device name, versions, timing, matmul rate, bandwidth
    report.py   replacing a section of docs/benchmarks.md

`from src.bench import main, goals, ...` gives table.py's names, imported on first use (so that
`python -m src.bench.table` runs that module once).
"""

TABLE_NAMES = ("SCALE_COLUMNS", "TABLE_COLUMNS", "TABLE_ROWS", "goals", "main", "markdown", "matmul_parameters",
               "measure")


def __getattr__(name: str):
    if name in TABLE_NAMES:
        from . import table
        return getattr(table, name)
    raise AttributeError(f"module 'src.bench' has no attribute {name!r}")
