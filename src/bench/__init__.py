"""Benchmarks, whose results go into docs/benchmarks.md with device, command and date.

    wkv.py      the WKV6 operator: each backend's forward and forward+backward (scripts/bench_wkv.sh)
    table.py    the paper's LoRA / Bone / Bat training table with our trainer (scripts/bench_table.sh)
    device.py   device name, versions, timing, matmul rate, bandwidth
    report.py   replacing a section of docs/benchmarks.md

`from src.bench import main, goals, ...` gives table.py's names (imported on first use, so that
`python -m src.bench.table` runs that module once); `python -m src.bench` runs table.py.
"""

RENAMED = {"REPO": "REPO_ROOT", "METHODS": "TABLE_ROWS"}


def __getattr__(name: str):
    import importlib
    if not name.startswith("__") and name not in ("table", "wkv", "device", "report"):
        table = importlib.import_module(f"{__name__}.table")
        if hasattr(table, RENAMED.get(name, name)):
            return getattr(table, RENAMED.get(name, name))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
