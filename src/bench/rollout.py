"""GRPO rollouts: G completions of one prompt, grouped (src/align/rollout.py) against one after another.

    bash scripts/bench_rollout.sh                                  # CPU: rwkv7-0.1b, fp32, G = 8, 64 tokens
    bash scripts/bench_rollout.sh --wkv_backend naive              # the step-by-step WKV, quicker for T = 1
    bash scripts/bench_rollout.sh --model rwkv7-1.5b --group_size 16 --max_new_tokens 256 --device cuda

(= python -m src.bench.rollout --write docs/benchmarks.md ...) A random model of the preset (fp32 on a
CPU, bf16 on a GPU), one prompt of --prompt_len random tokens, and G completions of --max_new_tokens
tokens each (no stop token, so every completion runs to the end), drawn twice with the same seeds: one
after another with generate_tokens (the prompt read G times, G forwards of one token per step), and
together with sample_groups (the prompt read once, its state copied to the G rows, one forward of G
tokens per step). Each time includes reading the prompt; tokens/s counts the G x max_new_tokens new
tokens (generate_tokens also reads each completion's last token, which sample_groups need not: one
step in max_new_tokens). The completions are compared: each row draws with its own seeded sampler, so they are the
same unless a batched matmul rounds a logit differently from a batch of one (bf16 can) and a draw
falls on the other side of it.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time

import torch

from ..align.rollout import sample_groups
from ..infer.generate import generate_tokens
from ..infer.sampling import Sampler
from ..model import resolve_config
from ..model.init import init_model
from .device import add_device_flag, device_name, resolve_device, sync, versions
from .report import add_write_flag, command_line, publish


def one_after_another(model, prompt: list[int], seeds: list[int], max_new_tokens: int, temperature: float,
                      top_p: float) -> list[list[int]]:
    return [list(generate_tokens(model, prompt, Sampler(temperature, top_p, 0, seed), max_new_tokens, stop_token=None))
            for seed in seeds]


def grouped(model, prompt: list[int], seeds: list[int], max_new_tokens: int, temperature: float,
            top_p: float) -> list[list[int]]:
    return sample_groups(model, [prompt], len(seeds), max_new_tokens, temperature, top_p, 0, seeds,
                         stop_tokens=()).completions


def timed(fn, device: str, *args) -> tuple[list[list[int]], float]:
    """fn(*args) and its wall time in seconds, the GPU synchronised around it."""
    sync(device)
    start = time.perf_counter()
    out = fn(*args)
    sync(device)
    return out, time.perf_counter() - start


def markdown(row: dict, meta: dict) -> str:
    lines = [f"Device: {meta['device']}. Versions: {meta['versions']}. Date: {meta['date']}.",
             f"Command: `{meta['command']}`. {meta['model']} preset (random, non-zero), {meta['dtype']}; one prompt of "
             f"{meta['prompt_len']} random tokens, {meta['group_size']} completions of {meta['max_new_tokens']} tokens "
             f"(no stop token), temperature {meta['temperature']}, top_p {meta['top_p']}, the same seeds both ways; "
             f"WKV backend {meta['wkv_backend']}. "
             f"Times include reading the prompt ({meta['group_size']} times one after another, once grouped); "
             f"tokens/s counts the new tokens.", "",
             "| model | G | prompt tokens | new tokens each | one after another: tokens/s | grouped: tokens/s | "
             "speed-up | identical completions |",
             "|---|---:|---:|---:|---:|---:|---:|---:|",
             f"| {meta['model']} | {meta['group_size']} | {meta['prompt_len']} | {meta['max_new_tokens']} | "
             f"{row['sequential']:,.1f} | {row['grouped']:,.1f} | {row['grouped'] / row['sequential']:.2f}x | "
             f"{row['identical']} of {meta['group_size']} |"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bash scripts/bench_rollout.sh", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="rwkv7-0.1b", metavar="PRESET",
                   help="model preset, random init (default: rwkv7-0.1b)")
    p.add_argument("--group_size", type=int, default=8, metavar="G", help="completions of the prompt (default: 8)")
    p.add_argument("--max_new_tokens", type=int, default=64, metavar="N",
                   help="tokens of each completion (default: 64)")
    p.add_argument("--prompt_len", type=int, default=64, metavar="N", help="tokens of the prompt (default: 64)")
    p.add_argument("--temperature", type=float, default=1.0, metavar="T", help="sampling temperature (default: 1.0)")
    p.add_argument("--top_p", type=float, default=1.0, metavar="P", help="top-p of the sampling (default: 1.0)")
    p.add_argument("--seed", type=int, default=0, metavar="N",
                   help="seed of the model, the prompt and the first completion; completion g draws with seed + g "
                        "(default: 0)")
    p.add_argument("--wkv_backend", default="auto", choices=("auto", "naive", "chunked"),
                   help="the WKV operator's backend (auto: our kernel for bf16 on a GPU, else chunked; naive, the "
                        "step-by-step recurrence, is the quicker of the two for one token at a time) (default: auto)")
    add_device_flag(p)
    add_write_flag(p, "scripts/bench_rollout.sh")
    args = p.parse_args(argv)
    if min(args.group_size, args.max_new_tokens, args.prompt_len) < 1:
        p.error("--group_size, --max_new_tokens and --prompt_len must be positive")
    if args.seed < 0:
        p.error(f"--seed must be >= 0, got {args.seed}")
    device = resolve_device(p, args.device)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    config = resolve_config(args.model, wkv_backend=args.wkv_backend)
    model = init_model(config, seed=args.seed, nonzero=True).to(device=device, dtype=dtype).eval()
    g = torch.Generator().manual_seed(args.seed)
    prompt = torch.randint(0, config.vocab_size, (args.prompt_len,), generator=g).tolist()
    seeds = [args.seed + i for i in range(args.group_size)]
    sampling = (args.temperature, args.top_p)

    one_after_another(model, prompt, seeds[:2], 2, *sampling)                   # warm up both paths
    grouped(model, prompt, seeds[:2], 2, *sampling)
    alone, sequential_s = timed(one_after_another, device, model, prompt, seeds, args.max_new_tokens, *sampling)
    together, grouped_s = timed(grouped, device, model, prompt, seeds, args.max_new_tokens, *sampling)
    identical = sum(a == b for a, b in zip(alone, together))
    new_tokens = args.group_size * args.max_new_tokens
    row = {"sequential": new_tokens / sequential_s, "grouped": new_tokens / grouped_s, "identical": identical}
    print(f"one after another {sequential_s:.2f}s, grouped {grouped_s:.2f}s; {identical} of {args.group_size} "
          f"completions identical", file=sys.stderr, flush=True)
    if identical < args.group_size:
        first = next(i for i, (a, b) in enumerate(zip(alone, together)) if a != b)
        step = next((j for j, (x, y) in enumerate(zip(alone[first], together[first])) if x != y), None)
        print(f"note: completion {first} differs from token {step} on: a batched step rounded a logit differently "
              f"from a batch of one, and the draw fell on the other side of it", file=sys.stderr)
    meta = {"device": device_name(device), "versions": versions(), "date": datetime.date.today().isoformat(),
            "command": command_line("python -m src.bench.rollout", argv), "model": args.model,
            "dtype": str(dtype).replace("torch.", ""), "prompt_len": args.prompt_len, "group_size": args.group_size,
            "max_new_tokens": args.max_new_tokens, "temperature": args.temperature, "top_p": args.top_p,
            "wkv_backend": args.wkv_backend}
    publish(markdown(row, meta), args.write, "rollout", "GRPO rollouts: grouped against one after another", device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
