"""A quantised base: host memory while loading, and a training step's time, against the model dtype.

    bash scripts/bench_quant.sh                              # CPU: rwkv7-0.4b-shaped random bf16 file
    bash scripts/bench_quant.sh --model rwkv7-1.5b --kinds nf4,int8

(= python -m src.bench.quant --write docs/benchmarks.md ...) A random checkpoint of the preset's shapes
(bf16, N(0, 0.02) values; written once into --work_dir) is loaded by a fresh process per row, with
load_model(quant=...) as train.py loads it: each linear layer of the blocks is read from the memory-
mapped file, quantised and dropped before the next. The process samples its anonymous resident memory
(RssAnon: what the model really takes; the file's pages are the page cache's, dropped under pressure)
every millisecond. Reported: that peak while loading, the memory after, the quantised weights' bytes
(QuantScheme.weight_bytes) and the largest full-precision tensor, so that "the quantised model plus one
tensor" can be read off. Then one Bone training step (forward + backward, --ctx_len tokens, fp32) of the
`--step_model` preset on each base: seconds, the ratio to the unquantised step, and the loss.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

from ..model import load_model, parameter_shapes, resolve_config, save_checkpoint
from ..model.init import init_model
from ..peft import PeftConfig, apply_peft
from ..quant import QUANT_TYPES, QuantScheme, quantize_model, quantized_modules
from ..train.infctx import sample_loss
from ..utils.paths import REPO_ROOT
from .device import device_name, versions
from .report import add_write_flag, command_line, publish

MIB = 2 ** 20


def rss_anon() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return 0


class PeakSampler:
    """The largest RssAnon seen, sampled every millisecond on a thread while the block runs."""

    def __enter__(self):
        self.peak, self.running = rss_anon(), True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self):
        while self.running:
            self.peak = max(self.peak, rss_anon())
            time.sleep(0.001)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()
        self.peak = max(self.peak, rss_anon())


def child_load(path: str, kind: str) -> dict:
    """In a fresh process: load `path` in bf16 with `kind` (or none), measuring host memory."""
    scheme = QuantScheme(kind) if kind != "none" else None
    if scheme is not None:                                    # bitsandbytes' import is not the model's memory
        from ..quant.backend import bnb_functional
        bnb_functional("cpu")
    before = rss_anon()
    start = time.perf_counter()
    with PeakSampler() as sampler:
        model = load_model(path, dtype=torch.bfloat16, quant=scheme)
    seconds = time.perf_counter() - start
    after = rss_anon()
    quantized = sum(w.nbytes() for w in quantized_modules(model).values())
    return {"kind": kind, "peak": sampler.peak - before, "after": after - before, "quantized": quantized,
            "seconds": seconds}


def measure_load(path: Path, kind: str) -> dict:
    """child_load in a fresh process (nothing loaded before it counts)."""
    out = subprocess.run([sys.executable, "-m", "src.bench.quant", "--child", str(path), kind],
                         capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def make_checkpoint(config, path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    sd = {k: (torch.randn(shape, generator=g) * 0.02).to(torch.bfloat16) for k, shape in parameter_shapes(config).items()}
    save_checkpoint(sd, path, dtype=None)


def random_checkpoint(work: Path, preset: str, config) -> Path:
    """work/<preset>-random-bf16.pth, written once (a later run with the same --work_dir reuses it)."""
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"{preset}-random-bf16.pth"
    if not path.is_file():
        print(f"writing {path} ...", file=sys.stderr, flush=True)
        make_checkpoint(config, path)
    return path


def step_seconds(model, ctx_len: int, repeats: int = 3) -> tuple[float, float]:
    """Median seconds of forward + backward after one untimed step (first-call costs), and the loss."""
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, model.config.vocab_size, (1, ctx_len + 1), generator=g)
    times, loss = [], None
    for i in range(repeats + 1):
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        loss = sample_loss(model, x[:, :-1], x[:, 1:], torch.ones(1, ctx_len), True)
        loss.backward()
        if i:
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2], loss.item()


def markdown(load_rows: list[dict], step_rows: list[dict], meta: dict) -> str:
    lines = [f"Device: {meta['device']}. Versions: {meta['versions']}. Date: {meta['date']}.",
             f"Command: `{meta['command']}`.", "",
             f"Loading a {meta['model']}-shaped random bf16 checkpoint ({meta['file_mib']:,.0f} MiB; its largest "
             f"tensor {meta['largest_mib']:,.0f} MiB) with `load_model(..., quant=)`: anonymous resident memory of the "
             f"process (RssAnon) at its peak while loading and after, beside the quantised weights' bytes.", "",
             "| base | peak while loading | after loading | quantised linears | peak - quantised linears | "
             "seconds |", "|---|---:|---:|---:|---:|---:|"]
    for r in load_rows:
        name = "bf16 (memory-mapped, not copied)" if r["kind"] == "none" else r["kind"]
        lines.append(f"| {name} | {r['peak'] / MIB:,.0f} MiB | {r['after'] / MIB:,.0f} MiB | "
                     f"{r['quantized'] / MIB:,.0f} MiB | {(r['peak'] - r['quantized']) / MIB:,.0f} MiB | "
                     f"{r['seconds']:.1f} |")
    lines += ["", "A bf16 file loaded in bf16 on the CPU is not copied at all (the tensors stay memory-mapped, the "
                  "page cache's); a quantised base is built in anonymous memory, one full-precision tensor at a time "
                  "(the embedding and head, not quantised, stay mapped).", "",
              f"One training step (Bone r{meta['rank']}, {meta['ctx_len']} tokens, fp32 compute, forward + backward, "
              f"median of 3) of the {meta['step_model']} preset, random non-zero weights:", "",
              "| base | seconds | x unquantised | loss |", "|---|---:|---:|---:|"]
    first = step_rows[0]["seconds"]
    for r in step_rows:
        lines.append(f"| {r['kind']} | {r['seconds']:.3f} | {r['seconds'] / first:.2f} | {r['loss']:.4f} |")
    lines += ["", "On a CPU, bitsandbytes computes a quantised product as dequantise + matmul; on a GPU its CUDA "
                  "kernels do the same for training-sized inputs, so the step costs the dequantisation on top."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bash scripts/bench_quant.sh", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="rwkv7-0.4b", metavar="PRESET",
                   help="the shapes of the checkpoint loaded (default: rwkv7-0.4b)")
    p.add_argument("--kinds", default="nf4,int8", metavar="LIST",
                   help=f"comma list of quantisation types besides the bf16 row, of {', '.join(QUANT_TYPES)} "
                        f"(default: nf4,int8)")
    p.add_argument("--step_model", default="rwkv7-tiny", metavar="PRESET",
                   help="the preset of the timed training step (default: rwkv7-tiny)")
    p.add_argument("--ctx_len", type=int, default=256, metavar="N", help="tokens of the timed step (default: 256)")
    p.add_argument("--rank", type=int, default=16, metavar="N", help="Bone's r for the timed step (default: 16)")
    p.add_argument("--work_dir", default=None, metavar="DIR",
                   help="where the random checkpoint is written, kept between runs (default: a temporary directory)")
    p.add_argument("--child", nargs=2, metavar=("PATH", "KIND"), help=argparse.SUPPRESS)
    add_write_flag(p, "scripts/bench_quant.sh")
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child_load(*args.child)))
        return 0
    kinds = [k for k in args.kinds.split(",") if k.strip()]
    bad = [k for k in kinds if k not in QUANT_TYPES]
    if bad or args.ctx_len < 1 or args.rank < 1:
        p.error(f"--kinds takes {', '.join(QUANT_TYPES)} (got {bad}); --ctx_len and --rank must be positive")
    config = resolve_config(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work_dir or tmp)
        path = random_checkpoint(work, args.model, config)
        load_rows = []
        for kind in ["none", *kinds]:
            load_rows.append(measure_load(path, kind))
            r = load_rows[-1]
            print(f"{kind}: peak {r['peak'] / MIB:,.0f} MiB while loading, quantised linears {r['quantized'] / MIB:,.0f}"
                  f" MiB", file=sys.stderr, flush=True)
        largest = max(s.numel() for s in parameter_shapes(config).values()) * 2
        file_mib = path.stat().st_size / MIB
    step_config = resolve_config(args.step_model)
    step_rows = []
    for kind in ["none", *kinds]:
        model = init_model(step_config, seed=0, nonzero=True)
        if kind != "none":
            quantize_model(model, QuantScheme(kind))
        model = apply_peft(model, PeftConfig("bone", args.rank), verbose=False).train()
        seconds, loss = step_seconds(model, args.ctx_len)
        step_rows.append({"kind": kind, "seconds": seconds, "loss": loss})
    meta = {"device": device_name("cpu"), "versions": versions(), "date": datetime.date.today().isoformat(),
            "command": command_line("python -m src.bench.quant", argv), "model": args.model, "file_mib": file_mib,
            "largest_mib": largest / MIB, "step_model": args.step_model, "ctx_len": args.ctx_len, "rank": args.rank}
    publish(markdown(load_rows, step_rows, meta), args.write, "quant", "A quantised base", "cpu")
    return 0


if __name__ == "__main__":
    sys.exit(main())
