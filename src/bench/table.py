"""The paper's Table 6 with our trainer: memory and tokens/s of LoRA, Bone and Bat on RWKV6.

    bash scripts/bench_table.sh                          # GPU: the 3B preset; CPU: the tiny preset
    bash scripts/bench_table.sh --model 3b --ctx_len 512 --micro_bsz 1 --steps 30
    bash scripts/bench_table.sh --scale                  # + Bone and LoRA at ctx 4096, micro batch 8, MFU

For each method (LoRA r=32, Bone r=64, Bat r=64 index "out", Bat r=64 index "in", and the
paper's way of running Bat, which builds W + ΔW through autograd) with and without gradient
checkpointing, a fresh process trains a randomly initialised model of the preset's shape
through the real training path (`src.train.trainer`: Lightning, DeepSpeed stage 1, bf16 on a
GPU / fp32 on a CPU, no train_parts) on random tokens, and reports:

    trainable_params   the parameters the optimizer sees
    peak_mem_mb        torch.cuda.max_memory_allocated over the whole run (CPU: peak RSS)
    peak_reserved_mb   torch.cuda.max_memory_reserved (what nvidia-smi sees, less the context)
    tokens_per_s       median over the steps after --warmup of micro_bsz * ctx_len / step time

Model FLOPs (scale rows): the base is frozen, so a token costs 2P FLOPs forward and 2P for
the input gradients of the backward, 4P in all, with P the weights that take part in
matrix products (the eight linears of each block, the token-shift and decay LoRAs, the
head; not the embedding, which is a lookup). The WKV recurrence, the adapters' own small
products and gradient checkpointing's recomputation are not counted. MFU is that rate
over the device's measured dense matmul rate (bf16 on a GPU, fp32 on a CPU).

Writes DIR/rwkv6-<model>-table.csv (the columns of TABLE_COLUMNS), DIR/rwkv6-<model>-scale.csv,
DIR/rwkv6-<model>-table.png and a section of docs/benchmarks.md with the paper's numbers
beside ours. Only GPU rows are results; the CPU run (tiny preset) is there so CI tests it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch

from ..peft.registry import METHODS as ADAPTER_METHODS
from ..utils.paths import DOCS, REPO_ROOT, shown
from .device import add_device_flag, device_name, matmul_tflops, resolve_device, versions
from .report import command_line, publish
from .table_report import (DEFAULT_R, SCALE_COLUMNS, TABLE_COLUMNS, TABLE_ROWS, markdown, merged_rows, plot,
                           write_csv)



# ------------------------------------------------------------------ one measurement (a fresh process)

class Probe(L.Callback):
    """Times each optimizer step (synchronising the GPU) and reads the peak memory at the end."""

    def __init__(self, tokens_per_step: int):
        self.tokens_per_step = tokens_per_step
        self.step_times: list[float] = []
        self._t = None
        self.trainable = 0
        self.peak_mb = self.reserved_mb = None

    def _sync(self, pl_module) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize()

    def on_train_start(self, trainer, pl_module) -> None:
        self.trainable = sum(p.numel() for p in pl_module.model.parameters() if p.requires_grad)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._sync(pl_module)
        self._t = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._sync(pl_module)
        self.step_times.append(time.perf_counter() - self._t)

    def on_train_end(self, trainer, pl_module) -> None:
        if pl_module.device.type == "cuda":
            self.peak_mb = torch.cuda.max_memory_allocated() / 2**20
            self.reserved_mb = torch.cuda.max_memory_reserved() / 2**20
        else:
            self.peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024     # Linux: KiB


def row_flags(method: str) -> dict:
    """train.py's adapter flags of a row: the paper's rows by name, any registered method at r = DEFAULT_R."""
    return TABLE_ROWS.get(method) or {"peft": method, "peft_r": DEFAULT_R}


def measure(spec: dict) -> dict:
    """Train one configuration; spec: base, data, proj_dir, method, grad_cp, micro_bsz, ctx_len, steps,
    warmup, accelerator."""
    from ..train import config_from_values, run

    on_gpu = spec["accelerator"] == "gpu"
    values = {"load_model": spec["base"], "data_file": spec["data"], "proj_dir": spec["proj_dir"],
              "accelerator": spec["accelerator"], "devices": 1, "strategy": "deepspeed_stage_1",
              "precision": "bf16" if on_gpu else "fp32", "grad_cp": spec["grad_cp"],
              "micro_bsz": spec["micro_bsz"], "ctx_len": spec["ctx_len"], "epoch_steps": spec["steps"],
              "epoch_count": 1, "warmup_steps": 0, "lr_init": 1e-5, "lr_final": 1e-5, "lr_schedule": "constant",
              "train_parts": [], "progress_bar": 0, "seed": 0, **row_flags(spec["method"])}
    probe = Probe(spec["micro_bsz"] * spec["ctx_len"])
    run(config_from_values({}, values), extra_callbacks=(probe,))
    measured = probe.step_times[spec["warmup"]:] or probe.step_times
    seconds = statistics.median(measured)
    return {"trainable_params": probe.trainable, "peak_mem_mb": probe.peak_mb, "peak_reserved_mb": probe.reserved_mb,
            "tokens_per_s": spec["micro_bsz"] * spec["ctx_len"] / seconds, "steps_measured": len(measured)}


def measure_in_subprocess(spec: dict) -> dict:
    """A fresh process per configuration: peak memory and compiled kernels do not leak between rows."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("LOCAL_RANK", "RANK", "WORLD_SIZE", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT")
           and not k.startswith("PL_")}
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    done = subprocess.run([sys.executable, "-m", "src.bench.table", "--worker", json.dumps(spec)], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True)
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            return json.loads(line[len("BENCH_RESULT "):])
    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
    if "out of memory" in tail.lower():
        return {"error": "out of memory"}
    raise RuntimeError(f"benchmark of {spec['method']} (grad_cp={spec['grad_cp']}) failed with status "
                       f"{done.returncode}:\n{tail}")


# ------------------------------------------------------------------ inputs and device facts

def make_inputs(model: str, work_dir: Path, ctx_len: int, seed: int = 0, nonzero: bool = False) -> tuple[Path, Path]:
    """A randomly initialised base of the preset's shape (reused if present; `nonzero`: with RWKV-LM's
    zero tensors randomised too) and random-token data."""
    from ..data import BinIdxWriter
    from ..model import init_state_dict, resolve_config, save_checkpoint

    work_dir.mkdir(parents=True, exist_ok=True)
    config = resolve_config(model)
    base = work_dir / f"rwkv6-{Path(model).stem}-random{'-nonzero' if nonzero else ''}.pth"
    if not base.exists():
        print(f"initialising a random {model} base once: {base}", file=sys.stderr, flush=True)
        save_checkpoint(init_state_dict(config, seed=seed, dtype=torch.bfloat16, nonzero=nonzero), base, dtype=None)
    data = work_dir / f"random-tokens-{config.vocab_size}"
    n_tokens = max(1 << 20, 4 * (ctx_len + 1))
    if not Path(f"{data}.bin").exists() or Path(f"{data}.bin").stat().st_size < 2 * n_tokens:
        rng = np.random.default_rng(seed)
        with BinIdxWriter(data) as writer:
            writer.add_document([rng.integers(1, config.vocab_size, size=n_tokens)])
    return base, data


def matmul_parameters(model: str) -> int:
    """P of the FLOPs count: the weights used in matrix products, i.e. every linear's weight but
    the embedding's, and the token-shift / decay LoRA matrices (not the per-channel vectors)."""
    from ..model import parameter_shapes, resolve_config
    lora = ("time_maa_w1", "time_maa_w2", "time_decay_w1", "time_decay_w2")
    return sum(int(np.prod(shape)) for name, shape in parameter_shapes(resolve_config(model)).items()
               if name.endswith(lora) or (name.endswith(".weight") and len(shape) == 2 and name != "emb.weight"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bash scripts/bench_table.sh", description=__doc__.split("\n\n")[0])
    known = list(dict.fromkeys([*TABLE_ROWS, *ADAPTER_METHODS]))
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--model", metavar="PRESET|FILE",
                   help="model preset or config JSON, randomly initialised (default: 3b on a GPU, tiny on a CPU)")
    p.add_argument("--ctx_len", type=int, default=512, metavar="N", help="tokens per sample (default: 512)")
    p.add_argument("--micro_bsz", type=int, default=1, metavar="N", help="samples per step (default: 1)")
    p.add_argument("--steps", type=int, default=30, metavar="N", help="optimizer steps per row (default: 30)")
    p.add_argument("--warmup", type=int, default=5, metavar="N",
                   help="first steps left out of the median (default: 5)")
    p.add_argument("--methods", default=",".join(TABLE_ROWS), metavar="LIST",
                   help=f"comma list of rows: the paper's ({', '.join(TABLE_ROWS)}) or any adapter method of "
                        f"src/peft/registry.py at r={DEFAULT_R} (default: the paper's)")
    p.add_argument("--grad_cp", default="0,1", metavar="LIST", help="comma list of 0 / 1 (default: 0,1)")
    p.add_argument("--scale", action="store_true",
                   help="also Bone and LoRA at --scale_ctx_len x --scale_micro_bsz, with MFU (default: off)")
    p.add_argument("--scale_ctx_len", type=int, default=4096, metavar="N", help="ctx_len of the scale rows "
                                                                                "(default: 4096)")
    p.add_argument("--scale_micro_bsz", type=int, default=8, metavar="N", help="micro batch of the scale rows "
                                                                               "(default: 8)")
    add_device_flag(p)
    p.add_argument("--work_dir", default=str(Path(tempfile.gettempdir()) / "rwkv6-bench"), metavar="DIR",
                   help="where the random base, the data and the runs go; the base is reused (default: %(default)s)")
    p.add_argument("--out_dir", default=str(DOCS / "bench"), metavar="DIR",
                   help="CSV and PNG (default: docs/bench)")
    p.add_argument("--markdown", default=str(DOCS / "benchmarks.md"), metavar="FILE",
                   help="the Markdown file whose section is replaced; '' for none (default: docs/benchmarks.md)")
    args = p.parse_args(argv)
    if args.worker:
        print("BENCH_RESULT " + json.dumps(measure(json.loads(args.worker))), flush=True)
        return 0

    device = resolve_device(p, args.device)
    model = args.model or ("3b" if device == "cuda" else "tiny")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in known]
    if unknown:
        p.error(f"--methods: unknown {unknown}; known: {', '.join(known)}")
    if not methods and not args.scale:
        p.error("nothing to measure: give --methods, --scale or both (--methods '' --scale: scale rows only)")
    grad_cps = [int(g) for g in args.grad_cp.split(",")]
    if any(g not in (0, 1) for g in grad_cps) or args.steps <= args.warmup or args.warmup < 0:
        p.error("--grad_cp takes 0 and/or 1; --steps must exceed --warmup (>= 0)")

    work = Path(args.work_dir)
    base, data = make_inputs(model, work, max(args.ctx_len, args.scale_ctx_len if args.scale else 0))
    date = datetime.date.today().isoformat()
    name = device_name(device)
    common = {"base": str(base), "data": str(data), "steps": args.steps, "warmup": args.warmup,
              "accelerator": "gpu" if device == "cuda" else "cpu"}

    def one(method: str, grad_cp: int, micro_bsz: int, ctx_len: int) -> dict:
        run_dir = Path(tempfile.mkdtemp(prefix=f"{method}-cp{grad_cp}-", dir=work))
        spec = {**common, "method": method, "grad_cp": grad_cp, "micro_bsz": micro_bsz, "ctx_len": ctx_len,
                "proj_dir": str(run_dir)}
        start = time.time()
        result = measure_in_subprocess(spec)
        row = {"device": name, "method": method, "r": row_flags(method)["peft_r"], "grad_cp": grad_cp,
               "micro_bsz": micro_bsz, "ctx_len": ctx_len, "date": date, **result}
        shown = result.get("error") or f"{result['peak_mem_mb']:.0f} MB, {result['tokens_per_s']:.0f} tokens/s"
        print(f"{method:17s} grad_cp={grad_cp} micro_bsz={micro_bsz} ctx={ctx_len}: {shown} "
              f"({time.time() - start:.0f}s)", flush=True)
        shutil.rmtree(run_dir, ignore_errors=True)
        return row

    rows = [one(m, g, args.micro_bsz, args.ctx_len) for g in grad_cps for m in methods]
    scale = []
    tflops = matmul_tflops(device)
    P = matmul_parameters(model)
    if args.scale:
        for m in ("bone", "lora"):
            row = one(m, 1, args.scale_micro_bsz, args.scale_ctx_len)
            if not row.get("error"):
                row.update(model_flops_per_token=4 * P, model_tflops_per_s=4 * P * row["tokens_per_s"] / 1e12,
                           matmul_tflops_per_s=tflops)
                row["mfu"] = row["model_tflops_per_s"] / tflops
            scale.append(row)

    stem = f"rwkv6-{Path(model).stem}"
    out_dir = Path(args.out_dir)
    csv_path, png_path = out_dir / f"{stem}-table.csv", out_dir / f"{stem}-table.png"
    every = merged_rows(csv_path, rows)                     # the CSV keeps every device's rows
    write_csv(csv_path, every, TABLE_COLUMNS)
    rows = [r for r in every if r["device"] == name]         # the report: this device's
    if scale:
        every = merged_rows(out_dir / f"{stem}-scale.csv", scale)
        write_csv(out_dir / f"{stem}-scale.csv", every, SCALE_COLUMNS)
        scale = [r for r in every if r["device"] == name]
    plot([r for r in rows if not r.get("error")], png_path,
         f"RWKV6 {model}, micro batch {args.micro_bsz}, ctx {args.ctx_len} — {name}")
    meta = {"device": name, "device_kind": device, "versions": versions(), "date": date,
            "command": command_line("bash scripts/bench_table.sh", argv),
            "model": model, "micro_bsz": args.micro_bsz, "ctx_len": args.ctx_len, "measured": args.steps - args.warmup,
            "warmup": args.warmup, "csv": shown(csv_path), "png": shown(png_path), "P": P, "matmul_tflops": tflops}
    publish(markdown(rows, scale, meta), args.markdown, "table", "LoRA, Bone and Bat training", device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
