"""The memory planner against the benchmark table's measured peaks (a step of gpu_checks.sh quick).

    python -m src.plan.against_table --table docs/bench/rwkv6-3b-table.csv --model 3b --write docs/benchmarks.md

Each row of src/bench/table.py's CSV (a method of TABLE_ROWS, its grad_cp, ctx_len, micro batch) is
planned as the benchmark trains it (DeepSpeed stage 1, one GPU, bf16): the estimate without the CUDA
context and allocator reserve beside torch.cuda.max_memory_allocated, and the whole estimate beside the
paper's Table 6 figure where the paper has the row. The planner is meant to be within TOLERANCE.
"""

from __future__ import annotations

import csv
from pathlib import Path

from ..peft import PeftConfig
from .measured import TOLERANCE
from .plan import MIB, Planner
from .request import PlanRequest


def table_request(row: dict, model: str, precision: str) -> PlanRequest:
    """The PlanRequest of a row of src/bench/table.py's CSV: its method's train.py flags (TABLE_ROWS),
    DeepSpeed stage 1 on one GPU, as the benchmark trains."""
    from ..bench.table_report import DEFAULT_R, TABLE_ROWS
    flags = TABLE_ROWS.get(row["method"]) or {"peft": row["method"], "peft_r": DEFAULT_R}
    options = {k: flags[k] for k in ("bat_index",) if k in flags}
    if "bat_materialize" in flags:
        options["bat_materialize"] = bool(flags["bat_materialize"])
    if "lora_alpha" in flags:
        options["alpha"] = flags["lora_alpha"]
    adapter = PeftConfig(method=flags["peft"], r=flags["peft_r"], **options)
    return PlanRequest(model=model, peft=flags["peft"], rank=flags["peft_r"], ctx_len=int(row["ctx_len"]),
                       micro_bsz=int(row["micro_bsz"]), grad_cp=bool(int(row["grad_cp"])),
                       quant=flags.get("quant", "none"), strategy="deepspeed_stage_1", precision=precision,
                       adapter=adapter)


def compare_table(path: str | Path, model: str, precision: str = "bf16") -> list[dict]:
    """Each measured row of the benchmark table beside the planner: the estimate without the CUDA overhead
    against torch.cuda.max_memory_allocated (peak_mem_mb), and with it against the paper's Table 6 figure
    where the paper has one (RWKV6-3B, no checkpointing)."""
    from ..bench.table_report import PAPER
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--table {path}: no such file (run the table benchmark first)")
    planner, out = Planner(), []
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            if row.get("error") or not row.get("peak_mem_mb"):
                continue
            plan = planner.estimate(table_request(row, model, precision))
            tensors = (plan.peak_bytes - plan.components["overhead"]) / MIB
            measured = float(row["peak_mem_mb"])
            paper_method = "bat" if row["method"] == "bat_materialized" else row["method"]   # the paper materialises
            paper = PAPER.get((paper_method, int(row["grad_cp"]))) if model == "3b" else None
            out.append({"method": row["method"], "grad_cp": int(row["grad_cp"]), "device": row["device"],
                        "estimate_tensors_mib": tensors, "measured_mib": measured, "error": tensors / measured - 1,
                        "estimate_mib": plan.peak_bytes / MIB, "paper_mb": paper[0] if paper else None})
    return out


def table_markdown(rows: list[dict], meta: dict) -> str:
    lines = [f"Device: {meta['device']}. Date: {meta['date']}. Command: `{meta['command']}`.",
             f"The memory planner (`bash scripts/plan.sh`) beside the benchmark table's measured rows "
             f"({meta['model']}, ctx and micro batch as measured, DeepSpeed stage 1, {meta['precision']}): its "
             f"estimate without the CUDA context and allocator reserve against torch.cuda.max_memory_allocated, "
             f"and the whole estimate against the paper's Table 6 where it has the row. The goal: within "
             f"{TOLERANCE:.0%}.", ""]
    if meta["device_kind"] != "cuda":
        lines += ["**CPU rehearsal, not a comparison**: the measured column is the process's peak RSS.", ""]
    lines += ["| method | grad_cp | estimate (tensors) MiB | measured MiB | error | estimate MiB | paper MB | "
              "error vs paper |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        paper = r["paper_mb"]
        vs_paper = f"{r['estimate_mib'] / paper - 1:+.1%}" if paper else "-"
        lines.append(f"| {r['method']} | {r['grad_cp']} | {r['estimate_tensors_mib']:,.0f} | {r['measured_mib']:,.0f} | "
                     f"{r['error']:+.1%} | {r['estimate_mib']:,.0f} | {paper or '-'} | {vs_paper} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    import argparse
    import datetime
    import sys

    from ..bench.device import device_name
    from ..bench.report import add_write_flag, command_line, publish
    from ..utils.cli import run_command

    p = argparse.ArgumentParser(prog="python -m src.plan.against_table",
                                description="The memory planner against the peaks the benchmark table measured.")
    p.add_argument("--table", required=True, metavar="CSV",
                   help="a CSV of src/bench/table.py (docs/bench/rwkv6-<model>-table.csv) (required)")
    p.add_argument("--model", default="3b", metavar="PRESET", help="the preset the table ran (default: 3b)")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                   help="where the table was measured (cpu: a rehearsal, fp32) (default: cuda)")
    add_write_flag(p, "scripts/gpu_checks.sh")
    args = p.parse_args(argv)

    def body() -> int:
        precision = "bf16" if args.device == "cuda" else "fp32"
        rows = compare_table(args.table, args.model, precision)
        if not rows:
            raise ValueError(f"--table {args.table}: no measured row")
        meta = {"device": device_name(args.device) if args.device == "cpu" or _has_cuda() else args.device,
                "date": datetime.date.today().isoformat(), "command": command_line("python -m src.plan.against_table", argv),
                "model": args.model, "precision": precision, "device_kind": args.device}
        publish(table_markdown(rows, meta), args.write, "plan-vs-measured", "The memory planner against measured peaks",
                args.device)
        return 0

    return run_command("python -m src.plan.against_table", body)


def _has_cuda() -> bool:
    import torch
    return torch.cuda.is_available()


if __name__ == "__main__":
    raise SystemExit(main())
