"""The planner against measured peaks: one CSV row of a GPU run -> the estimate beside it.

    compare_row({"model": "3b", "peft": "bone", "ctx_len": "512", "grad_cp": "0", "peak_mib": "11052"})
    # -> {"estimate_mib": ..., "measured_mib": 11052.0, "error": +0.04, "within": True, "line": "..."}
    compare_measured("docs/bench/memory_gpu.csv")        # every row of a file (plan.sh --measured FILE)

A row names the run with the planner's flags as columns (any left out take the planner's defaults)
and its measured peak in `peak_mib` (torch.cuda.max_memory_reserved() / 2**20, or nvidia-smi's); the
planner is meant to be within TOLERANCE of such measurements.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

from ..utils.options import parse_bool
from .plan import MIB, Planner
from .request import PlanRequest

TOLERANCE = 0.15
FIELDS = {f.name: f.type for f in dataclasses.fields(PlanRequest)}


def request_from_row(row: dict) -> PlanRequest:
    """The PlanRequest a CSV row describes (its columns that are planner flags)."""
    values = {}
    for name, kind in FIELDS.items():
        text = str(row.get(name, "")).strip()
        if not text:
            continue
        try:
            values[name] = (parse_bool(text) if kind in (bool, "bool") else int(text) if kind in (int, "int")
                            else float(text) if kind in (float, "float") else text)
        except ValueError:
            raise ValueError(f"measured row: column {name} holds {text!r}, not a {kind}") from None
    return PlanRequest(**values)


def compare_row(row: dict, planner: Planner | None = None) -> dict:
    """One measured row -> the estimate, the relative error (estimate / measured - 1) and whether it is within
    TOLERANCE."""
    try:
        measured = float(row["peak_mib"])
    except (KeyError, ValueError):
        raise ValueError(f"measured row {row}: needs a numeric peak_mib column") from None
    request = request_from_row(row)
    plan = (planner or Planner()).estimate(request)
    estimate = plan.peak_bytes / MIB
    error = estimate / measured - 1
    within = abs(error) <= TOLERANCE
    line = (f"{request.model} {request.peft} ctx {request.ctx_len} bsz {request.micro_bsz} grad_cp "
            f"{int(request.grad_cp)} quant {request.quant}: estimate {estimate:,.0f} MiB, measured {measured:,.0f} "
            f"MiB, error {error:+.1%} ({'within' if within else 'OUTSIDE'} {TOLERANCE:.0%})")
    return {"request": dataclasses.asdict(request), "estimate_mib": estimate, "measured_mib": measured,
            "error": error, "within": within, "line": line}


def compare_measured(path: str | Path) -> list[dict]:
    """compare_row for every row of a CSV file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--measured {path}: no such file")
    planner = Planner()
    with path.open(newline="") as f:
        return [compare_row(row, planner) for row in csv.DictReader(f)]

