"""The reports of the Table 6 benchmark (table.py): its CSV files, the chart, the goals against the
paper's numbers, and the docs/benchmarks.md section."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from ..peft.registry import METHODS as ADAPTER_METHODS
from ..utils.atomic import atomic_save_png, atomic_write_text
from .report import ratio

# The paper's rows: name -> train.py flags (55,050,240 trainable parameters each on 3B). Any other
# adapter method of the registry can be measured too (--methods disha,pissa), at r = DEFAULT_R.
TABLE_ROWS = {
    "lora": {"peft": "lora", "peft_r": 32, "lora_alpha": 32},
    "bone": {"peft": "bone", "peft_r": 64},
    "bat_out": {"peft": "bat", "peft_r": 64, "bat_index": "out"},
    "bat_in": {"peft": "bat", "peft_r": 64, "bat_index": "in"},
    "bat_materialized": {"peft": "bat", "peft_r": 64, "bat_index": "out", "bat_materialize": 1},
    "bone_nf4": {"peft": "bone", "peft_r": 64, "quant": "nf4"},          # the base held quantised (--quant)
    "lora_nf4": {"peft": "lora", "peft_r": 32, "lora_alpha": 32, "quant": "nf4"},
}
DEFAULT_R = 64
TABLE_COLUMNS = ["device", "method", "r", "grad_cp", "micro_bsz", "ctx_len", "trainable_params", "peak_mem_mb",
                 "peak_reserved_mb", "tokens_per_s", "date"]
SCALE_COLUMNS = TABLE_COLUMNS + ["model_flops_per_token", "model_tflops_per_s", "matmul_tflops_per_s", "mfu"]

# Table 6 of the paper (one RTX 4090, micro batch 1, ctx 512): MB, kt/s. With checkpointing it
# reports 4 GPUs (per-GPU memory, total throughput) at an unstated batch.
PAPER = {("lora", 0): (12074, 3.62), ("bone", 0): (11052, 3.99), ("bat", 0): (22978, 2.16),
         ("lora", 1): (15328, 15.6 / 4), ("bone", 1): (15304, 16.0 / 4), ("bat", 1): (15305, 14.2 / 4)}


# ------------------------------------------------------------------ reports

def cell(column: str, value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if column in ("mfu", "model_tflops_per_s", "matmul_tflops_per_s") else f"{value:.1f}"
    return str(value)


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns + (["error"] if any(r.get("error") for r in rows) else []),
                            lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: cell(k, row.get(k)) for k in writer.fieldnames})
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, out.getvalue())


KEY = ("device", "method", "grad_cp", "micro_bsz", "ctx_len")
NUMERIC = {"r": int, "grad_cp": int, "micro_bsz": int, "ctx_len": int, "trainable_params": int}


def read_rows(path: Path) -> list[dict]:
    """Rows of an earlier run's CSV, numbers as numbers (empty cells: None)."""
    if not path.exists():
        return []
    rows = []
    for r in csv.DictReader(open(path)):
        row = {}
        for k, v in r.items():
            if v == "" or v is None:
                row[k] = None
            elif k in NUMERIC:
                row[k] = NUMERIC[k](v)
            elif k in ("device", "method", "date", "error"):
                row[k] = v
            else:
                row[k] = float(v)
        rows.append(row)
    return rows


def merged_rows(path: Path, new: list[dict]) -> list[dict]:
    """An earlier CSV's rows with this run's replacing those of the same device, method, grad_cp,
    micro_bsz and ctx_len, so the table can be filled in several runs (one per grad_cp, say)."""
    keys = {tuple(r[k] for k in KEY) for r in new}
    kept = [r for r in read_rows(path) if tuple(r[k] for k in KEY) not in keys]
    order = {m: i for i, m in enumerate(dict.fromkeys([*TABLE_ROWS, *ADAPTER_METHODS]))}
    return sorted(kept + new, key=lambda r: (r["device"], r["grad_cp"], order.get(r["method"], 99)))


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(r["method"] for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.38
    for ax, key, label in ((axes[0], "peak_mem_mb", "peak memory (MB)"), (axes[1], "tokens_per_s", "tokens/s")):
        for k, grad_cp in enumerate((0, 1)):
            values = [next((r.get(key) or 0 for r in rows if r["method"] == m and r["grad_cp"] == grad_cp), 0)
                      for m in methods]
            ax.bar(np.arange(len(methods)) + (k - 0.5) * width, values, width,
                   label="gradient checkpointing" if grad_cp else "no checkpointing")
        ax.set_xticks(np.arange(len(methods)), methods, rotation=15)
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_save_png(fig, path)
    plt.close(fig)


def goals(rows: list[dict], verdicts: bool = True) -> list[str]:
    """The goals on the rows without and with checkpointing: Bone >= 1.10x LoRA's tokens/s with no more
    memory; bat_in within 1.10x Bone's memory and >= 0.90x its speed; bat_out within 1.15x and >= 0.75x.
    verdicts=False (a CPU smoke run) states the ratios only: the goals are about GPUs."""
    lines = []
    for grad_cp in (0, 1):
        by = {r["method"]: r for r in rows if r["grad_cp"] == grad_cp and not r.get("error")}
        if not {"lora", "bone"} <= set(by):
            continue
        tag = "with checkpointing" if grad_cp else "no checkpointing"

        def check(name, ok, text):
            lines.append(f"- {tag}: {text}" + (f" -> {'met' if ok else 'MISSED'}" if verdicts else ""))

        bone, lora = by["bone"], by["lora"]
        s, m = bone["tokens_per_s"] / lora["tokens_per_s"], bone["peak_mem_mb"] / lora["peak_mem_mb"]
        check("bone", s >= 1.10 and m <= 1.0, f"Bone / LoRA: speed {s:.2f}x (goal >= 1.10), memory {m:.2f}x (goal <= 1.00)")
        for name, max_mem, min_speed in (("bat_in", 1.10, 0.90), ("bat_out", 1.15, 0.75)):
            if name in by:
                s = by[name]["tokens_per_s"] / bone["tokens_per_s"]
                m = by[name]["peak_mem_mb"] / bone["peak_mem_mb"]
                check(name, s >= min_speed and m <= max_mem, f"{name} / Bone: speed {s:.2f}x (goal >= {min_speed:.2f}), "
                                                             f"memory {m:.2f}x (goal <= {max_mem:.2f})")
        if "bat_materialized" in by:
            ref = by["bat_materialized"]
            lines.append(f"- {tag}: the paper's way of running Bat (materialised W + ΔW) / Bone: speed "
                         f"{ref['tokens_per_s'] / bone['tokens_per_s']:.2f}x, memory "
                         f"{ref['peak_mem_mb'] / bone['peak_mem_mb']:.2f}x (the paper: 0.54x, 2.08x)")
    return lines


def markdown(rows: list[dict], scale: list[dict], meta: dict) -> str:
    gpu = meta["device_kind"] == "cuda"
    memory = "peak allocated MB" if gpu else "peak RSS MB"
    lines = [f"Device: {meta['device']}. Versions: {meta['versions']}. Date: {meta['date']}.",
             f"Command: `{meta['command']}`. Model: {meta['model']} preset, random init; micro batch "
             f"{meta['micro_bsz']}, ctx {meta['ctx_len']}, DeepSpeed stage 1, {'bf16' if gpu else 'fp32'}; "
             f"tokens/s is the median of {meta['measured']} steps after {meta['warmup']} warm-up steps; each row "
             f"is a fresh process. CSV: `{meta['csv']}`; chart: `{meta['png']}`.", ""]
    if not gpu:
        lines += ["**CPU smoke run of the script, not a result**: the paper's figures are for a GPU.", ""]
    lines.append(f"| method | grad_cp | trainable | {memory} | peak reserved MB | tokens/s | paper MB | paper kt/s "
                 f"| ours / paper memory | ours / paper speed |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        paper_key = ("bat" if r["method"].startswith("bat") else r["method"], r["grad_cp"])
        paper = PAPER.get(paper_key) if gpu and meta["model"] == "3b" else None
        if r.get("error"):
            lines.append(f"| {r['method']} | {r['grad_cp']} | - | {r['error']} | - | - | - | - | - | - |")
            continue
        paper_mb, paper_kts = paper if paper else (None, None)
        reserved = "-" if r["peak_reserved_mb"] is None else f"{r['peak_reserved_mb']:.0f}"
        lines.append(f"| {r['method']} | {r['grad_cp']} | {r['trainable_params']:,} | {r['peak_mem_mb']:.0f} | "
                     f"{reserved} | {r['tokens_per_s']:.0f} | {paper_mb or '-'} | "
                     f"{'-' if paper_kts is None else f'{paper_kts:.2f}'} | {ratio(r['peak_mem_mb'], paper_mb)} | "
                     f"{ratio(r['tokens_per_s'], paper_kts * 1000 if paper_kts else None)} |")
    lines.append("")
    if gpu and meta["model"] == "3b":
        lines.append("The paper's rows are from one RTX 4090; its checkpointing rows are 4 GPUs at an unstated "
                     "batch (memory per GPU, throughput divided by 4 here). The paper's one Bat row stands beside "
                     "each of our three (its code materialises W + ΔW, as bat_materialized does).")
    lines += goals(rows, verdicts=gpu)
    if scale:
        lines += ["", f"Scale rows (gradient checkpointing; FLOPs as in `src/bench/table.py`: 4 x {meta['P']:,} matmul "
                      f"weights per token; measured dense matmul rate {meta['matmul_tflops']:.3g} TFLOP/s):", "",
                  "| method | micro_bsz | ctx | tokens/s | peak MB | model TFLOP/s | MFU |", "|---|---:|---:|---:|---:|---:|---:|"]
        for r in scale:
            if r.get("error"):
                lines.append(f"| {r['method']} | {r['micro_bsz']} | {r['ctx_len']} | {r['error']} | - | - | - |")
            else:
                lines.append(f"| {r['method']} | {r['micro_bsz']} | {r['ctx_len']} | {r['tokens_per_s']:.0f} | "
                             f"{r['peak_mem_mb']:.0f} | {r['model_tflops_per_s']:.3g} | {100 * r['mfu']:.1f}% |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ the benchmark
