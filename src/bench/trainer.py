"""The trainer's cost per step: train.py's step beside a plain PyTorch loop doing the same step.

    bash scripts/bench_trainer.sh                  # CPU: tiny preset, Bone r16, fp32, ctx 256 x 2
    bash scripts/bench_trainer.sh --device cuda    # GPU: the 0.1b preset, bf16

(= python -m src.bench.trainer --write docs/benchmarks.md ...) Both train the same model
(a random init of the preset, every tensor non-zero), the same adapter, on the same samples
(src.data.TokenDataset) with AdamW and the same learning rate: the trainer through
src.train.run (Lightning, DeepSpeed stage 1, callbacks, metrics.csv), the plain loop as
`model(x)`, `F.cross_entropy`, `backward()`, `optimizer.step()`. They run in alternating
pairs in one process; a pair's ratio is the plain loop's median step time over the
trainer's (its tokens/s over the loop's), reported as the median over pairs, with L2Wrap
(the trainer's default, which the plain loop does not compute) and without.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from .device import add_device_flag, device_name, resolve_device, sync, versions
from .report import add_write_flag, command_line, publish
from .table import Probe, make_inputs


def trainer_step_seconds(values: dict, warmup: int) -> list[float]:
    """Step times of one run of src.train.run with `values` (flag names)."""
    from ..train import config_from_values, run
    cfg = config_from_values({}, values)
    probe = Probe(cfg.micro_bsz * cfg.ctx_len)
    run(cfg, extra_callbacks=(probe,))
    return probe.step_times[warmup:]


def plain_step_seconds(values: dict, warmup: int, device: str) -> list[float]:
    """Step times of the plain loop on what `values` describes."""
    from ..data import BinIdx, TokenDataset
    from ..model import load_model
    from ..peft import PeftConfig, apply_peft
    dtype = torch.bfloat16 if values["precision"] == "bf16" else torch.float32
    model = load_model(values["load_model"], dtype=dtype, device=device, grad_cp=bool(values["grad_cp"])).train()
    apply_peft(model, PeftConfig(values["peft"], values["peft_r"], seed=values["seed"]), verbose=False)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=values["lr_init"],
                                  betas=(0.9, 0.99), eps=1e-8, weight_decay=0.0)
    micro_bsz, steps = values["micro_bsz"], values["epoch_steps"]
    data = TokenDataset(BinIdx(values["data_file"]), "binidx", values["ctx_len"], seed=values["seed"],
                        micro_bsz=micro_bsz, num_batches=steps)
    times = []
    for step in range(steps):
        x, y, _ = (torch.stack(t).to(device) for t in zip(*(data[step * micro_bsz + i] for i in range(micro_bsz))))
        sync(device)
        start = time.perf_counter()
        logits = model(x)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync(device)
        times.append(time.perf_counter() - start)
    return times[warmup:]


def measure(model: str, device: str, ctx_len: int, micro_bsz: int, steps: int, warmup: int, pairs: int,
            work: Path) -> dict[bool, list[float]]:
    """{l2wrap: [ratio of each pair]}."""
    base, data = make_inputs(model, work, ctx_len, nonzero=True)
    values = {"load_model": str(base), "data_file": str(data), "accelerator": "gpu" if device == "cuda" else "cpu",
              "devices": 1, "strategy": "deepspeed_stage_1", "precision": "bf16" if device == "cuda" else "fp32",
              "grad_cp": 0, "micro_bsz": micro_bsz, "ctx_len": ctx_len, "epoch_steps": warmup + steps, "epoch_count": 1,
              "warmup_steps": 0, "lr_init": 1e-4, "lr_final": 1e-4, "lr_schedule": "constant", "peft": "bone",
              "peft_r": 16, "progress_bar": 0, "seed": 0, "train_parts": [], "keep_trainer_states": 0,
              "epoch_save": 1}
    ratios: dict[bool, list[float]] = {True: [], False: []}
    for pair in range(pairs):
        for l2wrap in (True, False):
            run_dir = Path(tempfile.mkdtemp(prefix="trainer-", dir=work))
            trainer = statistics.median(trainer_step_seconds({**values, "l2wrap": int(l2wrap),
                                                              "proj_dir": str(run_dir)}, warmup))
            plain = statistics.median(plain_step_seconds(values, warmup, device))
            ratios[l2wrap].append(plain / trainer)
            print(f"pair {pair + 1}, l2wrap {int(l2wrap)}: trainer {1000 * trainer:.1f} ms, plain loop "
                  f"{1000 * plain:.1f} ms per step -> {plain / trainer:.3f}", file=sys.stderr, flush=True)
    return ratios


def markdown(ratios: dict[bool, list[float]], meta: dict) -> str:
    lines = [f"Device: {meta['device']}. Versions: {meta['versions']}. Date: {meta['date']}.",
             f"Command: `{meta['command']}`. {meta['model']} preset (random, non-zero), Bone r16, {meta['dtype']}, "
             f"ctx {meta['ctx_len']} x micro batch {meta['micro_bsz']}, no gradient checkpointing; {meta['steps']} "
             f"measured steps after {meta['warmup']}, {meta['pairs']} alternating pairs.", "",
             "| trainer | its tokens/s over the plain loop's (median of pairs) | each pair |", "|---|---:|---|"]
    for l2wrap, label in ((True, "train.py (L2Wrap on, the default)"), (False, "train.py --l2wrap 0")):
        lines.append(f"| {label} | {statistics.median(ratios[l2wrap]):.3f}x | "
                     f"{', '.join(f'{r:.3f}' for r in ratios[l2wrap])} |")
    ok = statistics.median(ratios[True]) >= 0.95
    lines += ["", f"- goal: train.py with L2Wrap at least 0.95x the plain loop -> {'met' if ok else 'MISSED'}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bash scripts/bench_trainer.sh", description=__doc__.split("\n\n")[0])
    add_device_flag(p)
    p.add_argument("--model", metavar="PRESET", help="model preset (default: 0.1b on a GPU, tiny on a CPU)")
    p.add_argument("--ctx_len", type=int, default=256, metavar="N", help="tokens per sample (default: 256)")
    p.add_argument("--micro_bsz", type=int, default=2, metavar="N", help="samples per step (default: 2)")
    p.add_argument("--steps", type=int, default=20, metavar="N", help="measured steps per run (default: 20)")
    p.add_argument("--warmup", type=int, default=5, metavar="N", help="steps left out first (default: 5)")
    p.add_argument("--pairs", type=int, default=3, metavar="N", help="alternating pairs (default: 3)")
    p.add_argument("--work_dir", default=str(Path(tempfile.gettempdir()) / "rwkv6-bench"), metavar="DIR",
                   help="where the random base, the data and the runs go (default: %(default)s)")
    add_write_flag(p, "scripts/bench_trainer.sh")
    args = p.parse_args(argv)
    device = resolve_device(p, args.device)
    if min(args.ctx_len, args.micro_bsz, args.steps, args.pairs) < 1 or args.warmup < 0:
        p.error("--ctx_len, --micro_bsz, --steps and --pairs must be positive, --warmup not negative")
    model = args.model or ("0.1b" if device == "cuda" else "tiny")
    ratios = measure(model, device, args.ctx_len, args.micro_bsz, args.steps, args.warmup, args.pairs,
                     Path(args.work_dir))
    meta = {"device": device_name(device), "versions": versions(), "date": datetime.date.today().isoformat(),
            "command": command_line("python -m src.bench.trainer", argv), "model": model,
            "dtype": "bf16" if device == "cuda" else "fp32", "ctx_len": args.ctx_len, "micro_bsz": args.micro_bsz,
            "steps": args.steps, "warmup": args.warmup, "pairs": args.pairs}
    publish(markdown(ratios, meta), args.write, "trainer", "The trainer beside a plain loop", device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
