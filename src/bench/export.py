"""export.py's memory and time: exporting a large random checkpoint, tensor by tensor.

    bash scripts/bench_export.sh                          # CPU: rwkv7-1.5b-shaped random bf16 file, every format
    bash scripts/bench_export.sh --model 3b --work_dir /tmp/bench

(= python -m src.bench.export --write docs/benchmarks.md ...) A random checkpoint of the preset's shapes
(bf16, written once into --work_dir) is exported by a fresh process per format, which samples its
anonymous resident memory (RssAnon; the memory-mapped input is the page cache's) every millisecond.
Reported: that peak beside the file, its largest tensor, and the seconds.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..model import parameter_shapes, resolve_config
from ..utils.paths import REPO_ROOT
from .device import device_name, versions
from .quant import MIB, PeakSampler, random_checkpoint, rss_anon
from .report import add_write_flag, command_line, publish


def child_export(path: str, fmt: str, out: str) -> dict:
    from ..export.cli import main as export_main
    before = rss_anon()
    start = time.perf_counter()
    with PeakSampler() as sampler:
        code = export_main(["--model", path, "--format", fmt, "--out", out, "--overwrite"])
    out = Path(out)
    size = sum(f.stat().st_size for f in out.iterdir()) if out.is_dir() else out.stat().st_size
    return {"format": fmt, "code": code, "peak": sampler.peak - before, "seconds": time.perf_counter() - start,
            "out_bytes": size}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bash scripts/bench_export.sh", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="rwkv7-1.5b", metavar="PRESET",
                   help="the shapes of the exported checkpoint (default: rwkv7-1.5b)")
    p.add_argument("--formats", default="gguf,hf,st", metavar="LIST",
                   help="comma list of export formats (default: gguf,hf,st)")
    p.add_argument("--work_dir", default=None, metavar="DIR",
                   help="where the random checkpoint and the exports go (default: a temporary directory)")
    p.add_argument("--child", nargs=3, metavar=("PATH", "FORMAT", "OUT"), help=argparse.SUPPRESS)
    add_write_flag(p, "scripts/bench_export.sh")
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child_export(*args.child)))
        return 0
    config = resolve_config(args.model)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work_dir or tmp)
        path = random_checkpoint(work, args.model, config)
        for fmt in [f for f in args.formats.split(",") if f]:
            out = work / f"{args.model}.{fmt}"
            done = subprocess.run([sys.executable, "-m", "src.bench.export", "--child", str(path), fmt, str(out)],
                                  capture_output=True, text=True, cwd=REPO_ROOT)
            if done.returncode != 0:
                p.error(f"exporting as {fmt} failed: {done.stderr.strip().splitlines()[-1:]}")
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        file_mib = path.stat().st_size / MIB
    largest = max(s.numel() for s in parameter_shapes(config).values()) * 2
    lines = [f"Device: {device_name('cpu')}. Versions: {versions()}. Date: {datetime.date.today().isoformat()}.",
             f"Command: `{command_line('python -m src.bench.export', argv)}`.", "",
             f"Exporting a {args.model}-shaped random bf16 checkpoint ({file_mib:,.0f} MiB, its largest tensor "
             f"{largest / MIB:,.0f} MiB): the peak of the process's anonymous resident memory while exporting.", "",
             "| format | peak memory | output | seconds |", "|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['format']} | {r['peak'] / MIB:,.0f} MiB | {r['out_bytes'] / MIB:,.0f} MiB | "
                     f"{r['seconds']:.1f} |")
    publish("\n".join(lines) + "\n", args.write, "export", "Exporting a model", "cpu")
    return 0


if __name__ == "__main__":
    sys.exit(main())
