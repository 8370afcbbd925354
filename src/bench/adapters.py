"""One adapted linear layer, forward + backward, per method, beside the frozen plain linear.

    bash scripts/bench_adapters.sh                 # CPU: fp32, RWKV6-3B's shapes, 512 tokens
    bash scripts/bench_adapters.sh --device cuda   # GPU: bf16

(= python -m src.bench.adapters --write docs/benchmarks.md ...) Shapes: RWKV6-3B's
C -> C (2560 -> 2560, att.*), C -> 3.5C (2560 -> 8960, ffn.key) and 3.5C -> C (8960 -> 2560,
ffn.value). Methods: every one of the registry, at the paper's sizes (LoRA and PiSSA r=32,
Bone, Bat and DiSHA r=64, DiSHA with r1=64), Bat with both indexes and the paper's way of
running Bat (W + ΔW through autograd, kept for the backward). Each is timed as x -> y ->
backward of a fixed cotangent into x and the adapter (the base weight frozen), the methods
taken in turn within each repetition so that drift hits all alike; reported as the median
time and its ratio to the plain frozen linear of the same shape. On a GPU also the peak
memory beyond the inputs.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time

import torch
import torch.nn as nn

from ..peft import PeftConfig, make_adapter
from .device import add_device_flag, device_name, resolve_device, sync, versions
from .report import add_write_flag, command_line, publish

SHAPES = {"C -> C": (2560, 2560), "C -> 3.5C": (2560, 8960), "3.5C -> C": (8960, 2560)}
METHODS = {
    "lora r32": PeftConfig("lora", 32), "pissa r32": PeftConfig("pissa", 32), "bone r64": PeftConfig("bone", 64),
    "bat(in) r64": PeftConfig("bat", 64, bat_index="in"), "bat(out) r64": PeftConfig("bat", 64, bat_index="out"),
    "bat materialized r64": PeftConfig("bat", 64, bat_index="out", bat_materialize=True),
    "disha r64 r1=64": PeftConfig("disha", 64, disha_r1=64),
}
# the goals, as ratios to the plain linear: at most, or at most the paper's materialising Bat
GOALS = {"lora r32": 1.2, "bone r64": 1.2, "bat(in) r64": 1.2, "bat(out) r64": 1.9}


def make_layers(in_features: int, out_features: int, device: str, dtype: torch.dtype,
                seed: int = 0) -> dict[str, nn.Module]:
    """The plain frozen linear and one adapted copy per method, with small random adapter values."""
    g = torch.Generator().manual_seed(seed)
    weight = (torch.randn(out_features, in_features, generator=g) / in_features ** 0.5).to(device=device, dtype=dtype)
    layers: dict[str, nn.Module] = {}
    for name in ["plain", *METHODS]:
        linear = nn.Linear(in_features, out_features, bias=False, device=device, dtype=dtype)
        linear.weight = nn.Parameter(weight.clone(), requires_grad=False)
        if name == "plain":
            layers[name] = linear
            continue
        layer = make_adapter(linear, METHODS[name], name, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            for tensor in layer.adapter_names:
                p = getattr(layer, tensor)
                p.copy_(torch.randn(p.shape, generator=g) * 0.01)
        layers[name] = layer.to(device)
    return layers


def time_layers(layers: dict[str, nn.Module], tokens: int, in_features: int, device: str, dtype: torch.dtype,
                reps: int, warmup: int) -> dict[str, dict]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(tokens, in_features, generator=g).to(device=device, dtype=dtype).requires_grad_()
    cotangents = {}
    times: dict[str, list[float]] = {name: [] for name in layers}
    peaks: dict[str, float | None] = {}
    for rep in range(warmup + reps):
        for name, layer in layers.items():
            if name not in cotangents:
                with torch.no_grad():
                    cotangents[name] = torch.randn(layer(x).shape, generator=g).to(device=device, dtype=dtype)
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
            sync(device)
            start = time.perf_counter()
            layer(x).backward(cotangents[name])
            sync(device)
            if rep >= warmup:
                times[name].append(time.perf_counter() - start)
            if device == "cuda":
                peaks[name] = (torch.cuda.max_memory_allocated() - base) / 2**20
            x.grad = None
            for p in layer.parameters():
                p.grad = None
    plain = statistics.median(times["plain"])
    return {name: {"ms": 1000 * statistics.median(t), "ratio": statistics.median(t) / plain,
                   "peak_mb": peaks.get(name)} for name, t in times.items()}


def markdown(results: dict[str, dict[str, dict]], meta: dict) -> str:
    gpu = meta["device_kind"] == "cuda"
    shapes = list(results)
    lines = [f"Device: {meta['device']}. Versions: {meta['versions']}. Date: {meta['date']}.",
             f"Command: `{meta['command']}`. {meta['tokens']} tokens, {meta['dtype']}; forward + backward of one "
             f"layer, median of {meta['reps']} repetitions after {meta['warmup']}; ratio to the plain frozen linear "
             f"of the same shape, measured in the same process.", ""]
    head = " | ".join(f"{s} ({results[s]['plain']['ms']:.0f} ms plain)" for s in shapes)
    lines += [f"| method | {head} |", "|---|" + "---:|" * len(shapes)]
    for name in METHODS:
        cells = []
        for s in shapes:
            r = results[s][name]
            cells.append(f"{r['ratio']:.2f}x" + (f", {r['peak_mb']:.0f} MB" if gpu and r["peak_mb"] is not None else ""))
        lines.append(f"| {name} | {' | '.join(cells)} |")
    lines.append("")
    for name, limit in GOALS.items():
        worst = max(results[s][name]["ratio"] for s in shapes)
        ok = worst <= limit
        text = f"- {name}: at most {worst:.2f}x the plain layer (goal <= {limit:.2f}x)"
        if name == "bat(out) r64":
            reference = max(results[s][name]["ratio"] / results[s]["bat materialized r64"]["ratio"] for s in shapes)
            ok = ok and reference <= 1.0
            text += f", at most {reference:.2f}x the materialising Bat's time (goal <= 1.00)"
        lines.append(f"{text} -> {'met' if ok else 'MISSED'}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bash scripts/bench_adapters.sh", description=__doc__.split("\n\n")[0])
    add_device_flag(p)
    p.add_argument("--tokens", type=int, default=512, metavar="N", help="tokens per forward (default: 512)")
    p.add_argument("--shapes", default=",".join(SHAPES), metavar="LIST",
                   help=f"comma list of {', '.join(SHAPES)} (default: all)")
    p.add_argument("--scale", type=float, default=1.0, metavar="X",
                   help="multiply every width by X, e.g. 0.05 for a quick smoke run (default: 1)")
    p.add_argument("--reps", type=int, default=5, metavar="N", help="timed repetitions (default: 5)")
    p.add_argument("--warmup", type=int, default=1, metavar="N", help="untimed repetitions first (default: 1)")
    add_write_flag(p, "scripts/bench_adapters.sh")
    args = p.parse_args(argv)
    device = resolve_device(p, args.device)
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    unknown = [s for s in shapes if s not in SHAPES]
    if unknown or not shapes:
        p.error(f"--shapes: unknown {unknown}; known: {', '.join(SHAPES)}")
    if args.reps < 1 or args.warmup < 0 or args.tokens < 1 or not args.scale > 0:
        p.error("--reps and --tokens must be positive, --warmup not negative, --scale positive")
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    results = {}
    for shape in shapes:
        in_f, out_f = (max(64, int(round(n * args.scale / 64)) * 64) for n in SHAPES[shape])
        layers = make_layers(in_f, out_f, device, dtype)
        results[shape] = time_layers(layers, args.tokens, in_f, device, dtype, args.reps, args.warmup)
        print(f"{shape} ({in_f} -> {out_f}): " + ", ".join(f"{n} {r['ratio']:.2f}x" for n, r in results[shape].items()),
              file=sys.stderr, flush=True)
    meta = {"device": device_name(device), "device_kind": device, "versions": versions(),
            "date": datetime.date.today().isoformat(), "command": command_line("python -m src.bench.adapters", argv),
            "tokens": args.tokens, "dtype": str(dtype).replace("torch.", ""), "reps": args.reps, "warmup": args.warmup}
    publish(markdown(results, meta), args.write, "adapters", "One adapted layer", device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
