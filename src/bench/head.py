"""The head and the loss in chunks: the memory of a training step's logits, whole and chunked.

    bash scripts/bench_head.sh                              # CPU, tiny preset (vocab 65536), fp32
    bash scripts/bench_head.sh --ctx_lens 1024,4096 --head_chunk 512 --model rwkv7-tiny

(= python -m src.bench.head --write docs/benchmarks.md ...) For each ctx_len, one sample of random
tokens through the model with a Bone adapter and the training loss (src/train/infctx.py), once with
the head and the loss over all tokens at once and once over --head_chunk tokens at a time
(src/train/head_loss.py): the bytes the forward leaves alive for the backward and the peak of the
whole step (forward and backward), both counted by src/bench/held.py (every storage made during the
step; the weights are not in it), and the seconds of forward + backward. Whole, the step holds
(T, vocab) fp32 logits, log-probabilities and their gradient; chunked, one chunk's. The counts are
bytes, so a CPU measures them as a GPU would; the times are the CPU's.
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


def measure(model, ctx_len: int, head_chunk: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, model.config.vocab_size, (1, ctx_len + 1), generator=g)
    mask = torch.ones(1, ctx_len)
    model.zero_grad(set_to_none=True)
    start = time.perf_counter()
    with HeldMemory() as held:
        loss = sample_loss(model, x[:, :-1], x[:, 1:], mask, True, head_chunk=head_chunk)
        kept = held.bytes()
        loss.backward()
    seconds = time.perf_counter() - start
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return {"held": kept, "peak": held.peak_bytes(), "seconds": seconds, "loss": loss.item(), "grads": grads}


def largest_difference(a: dict, b: dict) -> float:
    """The largest relative difference between two runs' gradients, parameter by parameter."""
    return max((((a[n] - g).abs().max() / a[n].abs().max().clamp_min(1e-30)).item() for n, g in b.items()),
               default=0.0)


def markdown(rows: list[dict], meta: dict) -> str:
    mib = 2 ** 20
    lines = [f"Device: {meta['device']}. Versions: {meta['versions']}. Date: {meta['date']}.",
             f"Command: `{meta['command']}`. {meta['model']} preset (random, non-zero, vocabulary "
             f"{meta['vocab']:,}), Bone r{meta['rank']} on every linear, fp32, one sample; bytes the forward leaves "
             f"alive for the backward, the peak of the step beyond the weights, and forward + backward time.", "",
             f"| ctx_len | (T, vocab) fp32 tensor | whole: held | chunks of {meta['head_chunk']}: held | whole: peak | "
             f"chunks: peak | peak saved | whole: s | chunks: s | loss whole / chunks | gradients: largest relative "
             f"difference |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        w, c = r["whole"], r["chunked"]
        lines.append(f"| {r['ctx_len']} | {r['logits'] / mib:,.0f} MiB | {w['held'] / mib:,.1f} MiB | "
                     f"{c['held'] / mib:,.1f} MiB | {w['peak'] / mib:,.1f} MiB | {c['peak'] / mib:,.1f} MiB | "
                     f"{(w['peak'] - c['peak']) / mib:,.1f} MiB ({(w['peak'] - c['peak']) / r['logits']:.1f} x the "
                     f"tensor) | {w['seconds']:.2f} | {c['seconds']:.2f} | {w['loss']:.6f} / {c['loss']:.6f} | "
                     f"{r['grad_diff']:.1e} |")
    last = rows[-1]
    lines += ["", f"- at ctx_len {last['ctx_len']}, chunks of {meta['head_chunk']} tokens hold "
                  f"{last['chunked']['peak'] / max(last['whole']['peak'], 1):.2f} of the unchunked step's peak, and take "
                  f"{last['chunked']['seconds'] / max(last['whole']['seconds'], 1e-9):.2f}x its time (the head's matmul "
                  f"runs once more in the backward)"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bash scripts/bench_head.sh", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="tiny", metavar="PRESET",
                   help="model preset, random init; RWKV-7's as rwkv7-tiny (default: tiny)")
    p.add_argument("--ctx_lens", default="512,1024,2048,4096", metavar="LIST",
                   help="comma list of sample lengths (default: 512,1024,2048,4096)")
    p.add_argument("--head_chunk", type=int, default=256, metavar="N", help="tokens per chunk (default: 256)")
    p.add_argument("--rank", type=int, default=16, metavar="N", help="Bone's r (default: 16)")
    add_write_flag(p, "scripts/bench_head.sh")
    args = p.parse_args(argv)
    try:
        ctx_lens = sorted(int(c) for c in args.ctx_lens.split(",") if c.strip())
    except ValueError:
        p.error(f"--ctx_lens must be a comma list of whole numbers, got {args.ctx_lens!r}")
    if not ctx_lens or min(ctx_lens) < 1 or args.head_chunk < 1 or args.rank < 1:
        p.error("--ctx_lens, --head_chunk and --rank must be positive")
    config = resolve_config(args.model)
    model = apply_peft(init_model(config, seed=0, nonzero=True), PeftConfig("bone", args.rank), verbose=False).train()
    rows = []
    for ctx_len in ctx_lens:
        whole = measure(model, ctx_len, 0)
        chunked = measure(model, ctx_len, args.head_chunk)
        row = {"ctx_len": ctx_len, "whole": whole, "chunked": chunked, "logits": ctx_len * config.vocab_size * 4,
               "grad_diff": largest_difference(whole["grads"], chunked["grads"])}
        print(f"ctx_len {ctx_len}: peak whole {whole['peak'] / 2**20:.1f} MiB, chunks {chunked['peak'] / 2**20:.1f} MiB; "
              f"largest relative gradient difference {row['grad_diff']:.1e}", file=sys.stderr, flush=True)
        rows.append(row)
    meta = {"device": device_name("cpu"), "versions": versions(), "date": datetime.date.today().isoformat(),
            "command": command_line("python -m src.bench.head", argv), "model": args.model, "rank": args.rank,
            "head_chunk": args.head_chunk, "vocab": config.vocab_size}
    publish(markdown(rows, meta), args.write, "head", "The head and the loss in chunks", "cpu")
    return 0


if __name__ == "__main__":
    sys.exit(main())
