"""`python export.py`: a fine-tuned RWKV model (or base + adapter, merged on the fly) into another runtime's
file format, tensor by tensor from the memory-mapped .pth.

    python export.py --model merged.pth --format gguf --dtype q8_0 --out model.gguf  # llama.cpp
    python export.py --model merged.pth --format st --out model.st                 # ai00 / web-rwkv
    python export.py --model rwkv7-1.5b.pth --adapter out/bone --format st --out bone.st
    python export.py --state out/state/checkpoint-000100/state.pth --format st --out state.st
    python export.py --model merged7.pth --format hf --out rwkv7-merged-hf/                # fla-hub layout

The output is written atomically, never over an input, and over an existing file only with --overwrite.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..model.state import read_state_file
from ..peft.merge import MERGE_BASES
from ..peft.rwkv_peft import RWKV_PEFT_METHODS
from ..utils.cli import run_command
from ..utils.files import check_output
from . import gguf, hf, st
from .source import ExportSource

# --format: the module writing it, the dtypes it holds (the first is the default), what reads it, and
# whether --out is a directory
FORMATS = {"gguf": (gguf, gguf.DTYPES, "llama.cpp and what is built on it (Ollama, LM Studio, llama-cpp-python)",
                    False),
           "st": (st, ("f16",), "ai00 / web-rwkv (safetensors, fp16, ai00's key names and layouts)", False),
           "hf": (hf, tuple(hf.DTYPES), "Hugging Face transformers with fla or rwkv7-hf, llama.cpp's HF converter "
                                        "(a directory in fla-hub's RWKV-7 layout)", True)}


def check_output_directory(out: Path, inputs, overwrite: bool) -> None:
    """--out of a directory format: not a file, not holding an input, an existing one only with --overwrite."""
    for source in inputs:
        resolved, target = Path(source).resolve(), out.resolve()
        if resolved == target or target in resolved.parents:
            raise ValueError(f"--out {out} holds one of this command's inputs ({source}); choose another --out")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; --format hf writes a directory")
    if out.exists() and not overwrite:
        raise ValueError(f"{out} already exists; pass --overwrite to replace it")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="export.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", metavar="PATH", help="an RWKV .pth of any family (RWKV-6, RWKV-7): a merged model, or "
                                                   "the base of --adapter (default: none; required unless --state)")
    p.add_argument("--adapter", metavar="PATH", help="an adapter merged into --model on the fly (W + ΔW in fp32, "
                                                     "layer by layer): a directory of ours or an RWKV-PEFT file "
                                                     "(then --method) (default: none)")
    p.add_argument("--method", choices=RWKV_PEFT_METHODS,
                   help="the method of an RWKV-PEFT adapter file, which does not record it (default: ours records it)")
    p.add_argument("--lora_alpha", type=float, metavar="X", help="LoRA alpha of an RWKV-PEFT LoRA file (default: none)")
    p.add_argument("--pissa_init", metavar="PATH", help="RWKV-PEFT's init_pissa.pth for its PiSSA file (default: none)")
    p.add_argument("--merge_base", choices=MERGE_BASES, default="full",
                   help="for an adapter trained on a quantised base: merge into the full-precision base, or into "
                        "the base as quantised in training (merge.py's flag) (default: full)")
    p.add_argument("--state", metavar="FILE", help="export this state file (blocks.{i}.att.time_state) instead of a "
                                                   "model: the state file the runtime loads beside it (default: none)")
    p.add_argument("--format", required=True, choices=list(FORMATS),
                   help="the file format: " + "; ".join(f"{k}: {v[2]}" for k, v in FORMATS.items()) + " (required)")
    p.add_argument("--out", required=True, metavar="PATH", help="the file (st) or directory (hf) to write (required)")
    p.add_argument("--dtype", metavar="TYPE",
                   help="the dtype of the written tensors: " + "; ".join(f"{k}: {', '.join(v[1])}"
                                                                        for k, v in FORMATS.items())
                        + " (default: the format's first)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out (never an input) "
                                                            "(default: refuse)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        writer, dtypes, reader, out_is_dir = FORMATS[args.format]
        dtype = args.dtype or dtypes[0]
        if dtype not in dtypes:
            raise ValueError(f"--dtype {dtype}: --format {args.format} holds {', '.join(dtypes)} only ({reader})")
        out, start = Path(args.out), time.time()
        if args.state is not None:
            if args.model is not None or args.adapter is not None:
                raise ValueError("--state exports a state file alone: the runtime loads it beside the model, so "
                                 "export the model (--model) and the state (--state) in two runs")
            if not Path(args.state).is_file():
                raise FileNotFoundError(f"--state {args.state} does not exist")
            if not hasattr(writer, "export_state"):
                raise ValueError(f"--state: --format {args.format} has no state files; ai00's .st does (--format st)")
            check_output(out, "--out", inputs=(Path(args.state),), overwrite=args.overwrite)
            layers = read_state_file(args.state)
            count = writer.export_state(layers, out)
            what = f"the state of {len(layers)} layers from {args.state}"
        else:
            if args.model is None:
                raise ValueError("--model PATH is required (or --state FILE to export a state alone)")
            source = ExportSource.open(args.model, args.adapter, args.method, args.lora_alpha, args.pissa_init,
                                       args.merge_base)
            if out_is_dir:
                check_output_directory(out, source.inputs, args.overwrite)
            else:
                check_output(out, "--out", inputs=source.inputs, overwrite=args.overwrite)
            count = writer.export_model(source, out, dtype)
            merged = f" + {source.adapter.source} merged" if source.adapter is not None else ""
            what = f"{source.family.title} {args.model}{merged}"
        size = sum(f.stat().st_size for f in out.iterdir()) / 2**20 if out.is_dir() else out.stat().st_size / 2**20
        print(f"exported {what} as {args.format} ({count} tensors, {dtype}) to {out} ({size:,.1f} MiB) in "
              f"{time.time() - start:.1f}s", file=sys.stderr)
        return 0

    return run_command("export.py", body, interrupted="nothing was written (the output appears whole or not at all)")


if __name__ == "__main__":
    sys.exit(main())
