"""Forward and forward+backward time of each WKV6 (or, with --op wkv7, WKV7) backend, side by side in one run.

    bash scripts/bench_wkv.sh                 # CPU: naive vs chunked at a small size
    bash scripts/bench_wkv.sh --device cuda   # GPU: cuda vs chunked vs fla's chunk_rwkv6, B=8 T=4096 C=2560
    bash scripts/bench_wkv.sh --op wkv7       # RWKV-7's operator (GPU: cuda vs chunked vs fla's chunk_rwkv7)

(= python -m src.bench.wkv --write docs/benchmarks.md ...) Prints a Markdown table and
(with --write) puts it into docs/benchmarks.md between markers, with device, versions, command and date. On a GPU it
also measures the device's copy bandwidth and states how far the cuda backend's
forward+backward is from the memory-bandwidth floor: the bytes that must move at least
(read r, k, v, w; write y; read r, k, v, w, dy; write dr, dk, dv, dw: 14 x B*T*C bf16)
divided by that bandwidth.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from dataclasses import dataclass

import torch

from ..wkv6 import wkv6
from ..wkv7 import wkv7
from .device import add_device_flag, copy_bandwidth_gbs, device_name, median_ms, resolve_device, versions
from .report import add_write_flag, command_line, fmt, publish
CPU_DEFAULT = dict(B=2, T=512, C=256)
GPU_DEFAULT = dict(B=8, T=4096, C=2560)


@dataclass
class Row:
    backend: str
    fwd_ms: float | None = None
    fwd_bwd_ms: float | None = None
    peak_mem_mb: float | None = None
    note: str = ""


def make_inputs(B: int, T: int, C: int, dtype: torch.dtype, device: str, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    H = C // 64

    def rand(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g) * scale).to(device=device, dtype=dtype)

    r, k, v = rand(B, T, C), rand(B, T, C, scale=0.5), rand(B, T, C)
    w = (torch.rand(B, T, C, generator=g) * 5 - 6).to(device=device, dtype=dtype)     # decays exp(-exp(w)), w in [-6, -1]
    u = rand(H, 64, scale=0.5)
    gy = rand(B, T, C)
    return r, k, v, w, u, gy


def make_inputs7(B: int, T: int, C: int, dtype: torch.dtype, device: str, seed: int = 0):
    """WKV7's inputs as the model makes them: decays in RWKV-7's range, a = -kk, b = kk * rate."""
    g = torch.Generator().manual_seed(seed)
    H = C // 64

    def rand(*shape, scale=1.0):
        return torch.randn(*shape, generator=g) * scale

    r, k, v = rand(B, T, C), rand(B, T, C, scale=0.5), rand(B, T, C)
    w = -torch.nn.functional.softplus(-rand(B, T, C)) - 0.5
    kk = torch.nn.functional.normalize(rand(B, T, H, 64), dim=-1).view(B, T, C)
    rate = torch.sigmoid(rand(B, T, C))
    xs = (r, w, k, v, -kk, kk * rate, rand(B, T, C))
    return tuple(x.to(device=device, dtype=dtype) for x in xs)


def fla7_call():
    """fla's chunk_rwkv7 in our layout, or None when fla is not installed."""
    try:
        from fla.ops.rwkv7 import chunk_rwkv7
    except Exception:
        return None

    def run(r, w, k, v, a, b):
        B, T, C = r.shape
        split = lambda x: x.view(B, T, C // 64, 64)
        o, _ = chunk_rwkv7(split(r), split(w), split(k), split(v), split(a), split(b), scale=1.0)
        return o.reshape(B, T, C)
    return run


def fla_call():
    """fla's chunk_rwkv6 in our layout, or None when fla is not installed."""
    try:
        from fla.ops.rwkv6 import chunk_rwkv6
    except Exception:
        return None

    def run(r, k, v, w, u):
        B, T, C = r.shape
        H = u.shape[0]
        split = lambda x: x.view(B, T, H, -1)
        o, _ = chunk_rwkv6(split(r), split(k), split(v), -torch.exp(split(w).float()).to(w.dtype), u,
                           scale=1.0)
        return o.reshape(B, T, C)
    return run


def bench_backend(name: str, run, inputs, device: str, reps: int, warmup: int) -> Row:
    """inputs: the operator's tensors, then the output's cotangent."""
    *tensors, gy = inputs
    leaves = [x.detach().requires_grad_() for x in tensors]

    def forward():
        with torch.no_grad():
            run(*leaves)

    def forward_backward():
        y = run(*leaves)
        y.backward(gy)
        for x in leaves:
            x.grad = None

    row = Row(name)
    try:
        row.fwd_ms = median_ms(forward, device, reps, warmup)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        row.fwd_bwd_ms = median_ms(forward_backward, device, reps, warmup)
        if device == "cuda":
            row.peak_mem_mb = (torch.cuda.max_memory_allocated() - base) / 2**20
    except torch.OutOfMemoryError:
        row.note = "out of memory"
        if device == "cuda":
            torch.cuda.empty_cache()
    return row


def run_benchmark(device: str, B: int, T: int, C: int, reps: int, warmup: int,
                  backends: list[str], op: str = "wkv6") -> tuple[list[Row], dict]:
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    inputs = (make_inputs7 if op == "wkv7" else make_inputs)(B, T, C, dtype, device)
    rows = []
    for name in backends:
        if name == "fla":
            label = f"fla chunk_rwkv{op[-1]}"
            run = fla7_call() if op == "wkv7" else fla_call()
            if run is None:
                rows.append(Row(label, note="fla not installed"))
                continue
            rows.append(bench_backend(label, run, inputs, device, reps, warmup))
        elif op == "wkv7":
            run = lambda r, w, k, v, a, b, _b=name: wkv7(r, w, k, v, a, b, backend=_b)[0]
            rows.append(bench_backend(name, run, inputs, device, reps, warmup))
        else:
            run = lambda r, k, v, w, u, _b=name: wkv6(r, k, v, w, u, backend=_b)[0]
            rows.append(bench_backend(name, run, inputs, device, reps, warmup))
    extra = {"dtype": str(dtype).replace("torch.", "")}
    if device == "cuda":
        bandwidth = copy_bandwidth_gbs(device)
        floor_ms = 14 * B * T * C * 2 / (bandwidth * 1e9) * 1000
        extra.update(bandwidth_gbs=bandwidth, floor_ms=floor_ms)
    return rows, extra


def markdown(rows: list[Row], extra: dict, device: str, B: int, T: int, C: int, command: str, op: str = "wkv6") -> str:
    date = datetime.date.today().isoformat()
    lines = [f"Device: {device_name(device)}. Versions: {versions()}. Date: {date}.",
             f"Command: `{command}`. Shape B={B}, T={T}, C={C} (H={C // 64}, head size 64), "
             f"inputs {extra['dtype']}; median of the measured repetitions.", ""]
    mem_col = device == "cuda"
    lines.append("| backend | forward ms | forward+backward ms |" + (" peak extra memory MB |" if mem_col else "") + " note |")
    lines.append("|---|---:|---:|" + ("---:|" if mem_col else "") + "---|")
    for row in rows:
        mem = f" {fmt(row.peak_mem_mb, 0)} |" if mem_col else ""
        lines.append(f"| {row.backend} | {fmt(row.fwd_ms)} | {fmt(row.fwd_bwd_ms)} |{mem} {row.note} |")
    by_name = {r.backend: r for r in rows}
    lines.append("")
    if "naive" in by_name and "chunked" in by_name and by_name["naive"].fwd_bwd_ms and by_name["chunked"].fwd_bwd_ms:
        ratio = by_name["naive"].fwd_bwd_ms / by_name["chunked"].fwd_bwd_ms
        lines.append(f"- chunked is {ratio:.1f}x faster than naive (forward+backward).")
    fla = by_name.get(f"fla chunk_rwkv{op[-1]}")
    if "cuda" in by_name and by_name["cuda"].fwd_bwd_ms:
        cuda_ms = by_name["cuda"].fwd_bwd_ms
        if fla and fla.fwd_bwd_ms:
            lines.append(f"- cuda / fla time ratio (forward+backward): {cuda_ms / fla.fwd_bwd_ms:.2f} "
                         f"(forward: {by_name['cuda'].fwd_ms / fla.fwd_ms:.2f}); below 1 means ours is faster.")
        if "floor_ms" in extra:
            lines.append(f"- measured copy bandwidth {extra['bandwidth_gbs']:.0f} GB/s; the memory floor of one "
                         f"forward+backward (14 x B*T*C bf16 = {14 * B * T * C * 2 / 1e9:.2f} GB) is "
                         f"{extra['floor_ms']:.2f} ms, so cuda runs at {cuda_ms / extra['floor_ms']:.1f}x the floor.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bash scripts/bench_wkv.sh", description=__doc__.split("\n\n")[0])
    add_device_flag(p)
    p.add_argument("--op", choices=("wkv6", "wkv7"), default="wkv6",
                   help="the operator: RWKV-6's WKV6 or RWKV-7's WKV7 (default: wkv6)")
    p.add_argument("--B", type=int, metavar="N", help=f"batch (default: {GPU_DEFAULT['B']} on a GPU, "
                                                      f"{CPU_DEFAULT['B']} on a CPU)")
    p.add_argument("--T", type=int, metavar="N", help=f"sequence length (default: {GPU_DEFAULT['T']} on a GPU, "
                                                      f"{CPU_DEFAULT['T']} on a CPU)")
    p.add_argument("--C", type=int, metavar="N", help=f"channels, a multiple of the head size 64 (default: "
                                                      f"{GPU_DEFAULT['C']} on a GPU, {CPU_DEFAULT['C']} on a CPU)")
    p.add_argument("--reps", type=int, default=5, metavar="N", help="timed repetitions; the median is reported "
                                                                    "(default: 5)")
    p.add_argument("--warmup", type=int, default=2, metavar="N", help="untimed repetitions first (default: 2)")
    p.add_argument("--backends", default=None, metavar="LIST",
                   help="comma list of naive, chunked, cuda, fla (default: naive,chunked on a CPU; cuda,chunked,fla "
                        "on a GPU)")
    add_write_flag(p, "scripts/bench_wkv.sh")
    args = p.parse_args(argv)
    device = resolve_device(p, args.device)
    size = dict(GPU_DEFAULT if device == "cuda" else CPU_DEFAULT)
    size.update({k: getattr(args, k) for k in ("B", "T", "C") if getattr(args, k) is not None})
    if size["C"] % 64:
        p.error(f"--C {size['C']} must be a multiple of the head size 64")
    backends = (args.backends.split(",") if args.backends else
                (["cuda", "chunked", "fla"] if device == "cuda" else ["naive", "chunked"]))
    rows, extra = run_benchmark(device, size["B"], size["T"], size["C"], args.reps, args.warmup, backends, args.op)
    table = markdown(rows, extra, device, size["B"], size["T"], size["C"], command_line("python -m src.bench.wkv", argv),
                     args.op)
    publish(table, args.write, args.op, f"{args.op.upper()} operator", device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
