"""infctx memory: what the forward of one training sample keeps for its backward, whole and in chunks.

    bash scripts/bench_infctx.sh                          # CPU, tiny preset, fp32
    bash scripts/bench_infctx.sh --ctx_lens 512,8192 --chunk_ctx 512

(= python -m src.bench.infctx --write docs/benchmarks.md ...) For each ctx_len, one sample of
random tokens through the model with a Bone adapter and the training loss (src/train/infctx.py),
once whole and once in chunks of --chunk_ctx tokens: the bytes the forward leaves alive for the
backward (src/bench/held.py: every storage made in the forward and still alive), and the
seconds of forward + backward. Whole, they grow with ctx_len (activations of every token and the
(T, vocab) logits); in chunks, they grow by the states between chunks alone, whose size is
printed beside: per layer two (B, C) token shifts and one (B, H, N, N) fp32 WKV state.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time

import torch

from ..model import resolve_config
from ..model.init import init_model
from ..peft import PeftConfig, apply_peft
from ..train.infctx import sample_loss
from .device import device_name, versions
from .held import HeldMemory
from .report import add_write_flag, command_line, publish


def boundary_bytes(config, batch: int, itemsize: int) -> int:
    """The state passed from one chunk to the next: per layer two token shifts and a WKV state."""
    return config.n_layer * (2 * batch * config.n_embd * itemsize + batch * config.n_head * config.head_size ** 2 * 4)


def measure(model, ctx_len: int, chunk_ctx: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, model.config.vocab_size, (1, ctx_len + 1), generator=g)
    mask = torch.ones(1, ctx_len)
    start = time.perf_counter()
    with HeldMemory() as held:
        loss = sample_loss(model, x[:, :-1], x[:, 1:], mask, True, chunk_ctx)
    nbytes = held.bytes()
    loss.backward()
    seconds = time.perf_counter() - start
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return {"bytes": nbytes, "seconds": seconds, "loss": loss.item(), "grads": grads}


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [f"Device: {meta['device']}. Versions: {meta['versions']}. Date: {meta['date']}.",
             f"Command: `{meta['command']}`. {meta['model']} preset (random, non-zero), Bone r{meta['rank']} on every "
             f"linear, fp32, one sample; bytes the forward leaves alive for the backward, and forward + backward "
             f"time. States between chunks: {meta['boundary'] / 1024:.0f} KiB each.", "",
             f"| ctx_len | whole: held | chunks of {meta['chunk_ctx']}: held | chunks: growth from the first row | "
             f"states between chunks, same growth | whole: s | chunks: s | loss whole / chunks | gradients: largest "
             f"relative difference |",
             "|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    first = rows[0]
    for r in rows:
        grow = r["chunked"]["bytes"] - first["chunked"]["bytes"]
        states = (r["boundaries"] - first["boundaries"]) * meta["boundary"]
        whole = f"{r['whole']['bytes'] / 2**20:,.1f} MiB" if r["whole"] else "not run"
        whole_s = f"{r['whole']['seconds']:.2f}" if r["whole"] else "-"
        losses = (f"{r['whole']['loss']:.6f} / {r['chunked']['loss']:.6f}" if r["whole"]
                  else f"- / {r['chunked']['loss']:.6f}")
        lines.append(f"| {r['ctx_len']} | {whole} | {r['chunked']['bytes'] / 2**20:,.2f} MiB | "
                     f"{grow / 2**20:+,.2f} MiB | {states / 2**20:+,.2f} MiB | {whole_s} | "
                     f"{r['chunked']['seconds']:.2f} | {losses} | {r['grad_diff']:.1e} |")
    last = rows[-1]
    grow = last["chunked"]["bytes"] - first["chunked"]["bytes"]
    states = (last["boundaries"] - first["boundaries"]) * meta["boundary"]
    lines += ["", f"- from ctx_len {first['ctx_len']} to {last['ctx_len']}, the chunked forward keeps "
                  f"{grow / 2**20:+.2f} MiB more, the added states between chunks {states / 2**20:.2f} MiB "
                  f"(ratio {grow / max(states, 1):.2f})"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bash scripts/bench_infctx.sh", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="tiny", metavar="PRESET",
                   help="model preset, random init; RWKV-7's as rwkv7-tiny (default: tiny)")
    p.add_argument("--ctx_lens", default="512,1024,2048,4096,8192", metavar="LIST",
                   help="comma list of sample lengths (default: 512,1024,2048,4096,8192)")
    p.add_argument("--chunk_ctx", type=int, default=256, metavar="N", help="tokens per chunk (default: 256)")
    p.add_argument("--whole_up_to", type=int, default=8192, metavar="N",
                   help="run whole samples only up to this ctx_len (their memory grows fast; default: 8192)")
    p.add_argument("--rank", type=int, default=16, metavar="N", help="Bone's r (default: 16)")
    add_write_flag(p, "scripts/bench_infctx.sh")
    args = p.parse_args(argv)
    try:
        ctx_lens = sorted(int(c) for c in args.ctx_lens.split(",") if c.strip())
    except ValueError:
        p.error(f"--ctx_lens must be a comma list of whole numbers, got {args.ctx_lens!r}")
    if not ctx_lens or min(ctx_lens) < 1 or args.chunk_ctx < 1 or args.rank < 1:
        p.error("--ctx_lens, --chunk_ctx and --rank must be positive")
    config = resolve_config(args.model)
    model = apply_peft(init_model(config, seed=0, nonzero=True), PeftConfig("bone", args.rank), verbose=False).train()
    rows = []
    for ctx_len in ctx_lens:
        whole = measure(model, ctx_len, 0) if ctx_len <= args.whole_up_to else None
        chunked = measure(model, ctx_len, args.chunk_ctx)
        boundaries = -(-ctx_len // args.chunk_ctx) - 1
        worst = max((((whole["grads"][n] - g).abs().max() / whole["grads"][n].abs().max().clamp_min(1e-30)).item()
                     for n, g in chunked["grads"].items()), default=0.0) if whole else float("nan")
        print(f"ctx_len {ctx_len}: held whole {whole['bytes'] / 2**20 if whole else float('nan'):.1f} MiB, chunks "
              f"{chunked['bytes'] / 2**20:.2f} MiB; largest relative gradient difference {worst:.1e}",
              file=sys.stderr, flush=True)
        rows.append({"ctx_len": ctx_len, "whole": whole, "chunked": chunked, "boundaries": boundaries,
                     "grad_diff": worst})
    meta = {"device": device_name("cpu"), "versions": versions(), "date": datetime.date.today().isoformat(),
            "command": command_line("python -m src.bench.infctx", argv), "model": args.model, "rank": args.rank,
            "chunk_ctx": args.chunk_ctx, "boundary": boundary_bytes(config, 1, 4)}
    publish(markdown(rows, meta), args.write, "infctx", "infctx: memory of long samples", "cpu")
    return 0


if __name__ == "__main__":
    sys.exit(main())
