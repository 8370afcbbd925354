"""`bash scripts/plan.sh` (= python -m src.plan): the memory plan of a training run, as text or JSON.

    bash scripts/plan.sh --model rwkv7-13.3b --peft bone --rank 64 --ctx_len 4096 --quant nf4
    bash scripts/plan.sh --model 3b --peft lora --ctx_len 512 --grad_cp 0 --json
    bash scripts/plan.sh --model rwkv6-3b.pth ...              # shapes read from the file (memory-mapped)

Bad input ends as one line on stderr naming the flag, exit status 2 (src/utils/cli.py run_command).
"""

from __future__ import annotations

import argparse
import json
import sys

from ..peft.registry import PEFT_METHODS
from ..quant.scheme import BLOCKSIZES
from ..train.config.train_config import STRATEGIES
from ..utils.cli import run_command
from ..utils.options import parse_bool
from .measured import compare_measured
from .request import PRECISIONS, QUANT_CHOICES, PlanRequest
from .plan import Planner
from .search import plan_with_search

D = PlanRequest()


def _int01(value: str) -> bool:
    try:
        return parse_bool(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 0 or 1, got {value!r}") from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bash scripts/plan.sh", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=D.model, metavar="PRESET|FILE",
                   help=f"a model preset (RWKV-6: tiny, 0.1b, ..., 14b; RWKV-7: rwkv7-tiny, ..., rwkv7-13.3b), a "
                        f"config .json or a .pth checkpoint (default: {D.model})")
    p.add_argument("--peft", default=D.peft, choices=(*PEFT_METHODS, "none"),
                   help=f"the adapter method; state: state tuning; none: full fine-tuning (default: {D.peft})")
    p.add_argument("--rank", type=int, default=D.rank, metavar="N",
                   help=f"the method's r (Bone's block width, LoRA's rank, ...; unused by state) (default: {D.rank})")
    p.add_argument("--ctx_len", type=int, default=D.ctx_len, metavar="N", help=f"tokens per sample (default: {D.ctx_len})")
    p.add_argument("--micro_bsz", type=int, default=D.micro_bsz, metavar="N",
                   help=f"samples per GPU per forward (default: {D.micro_bsz})")
    p.add_argument("--gpus", type=int, default=D.gpus, metavar="N",
                   help=f"GPUs of the whole run (devices x nodes), over which ZeRO partitions (default: {D.gpus})")
    p.add_argument("--gpu_mem", type=float, default=D.gpu_mem, metavar="GIB",
                   help=f"memory of one GPU in GiB (a '24 GB' card holds 24 GiB) (default: {D.gpu_mem:g})")
    p.add_argument("--quant", default=D.quant, choices=QUANT_CHOICES,
                   help=f"hold the frozen base's linear weights quantised (bitsandbytes) (default: {D.quant})")
    p.add_argument("--quant_blocksize", type=int, default=D.quant_blocksize, choices=BLOCKSIZES,
                   help=f"values per absmax of the 4-bit types (default: {D.quant_blocksize})")
    p.add_argument("--quant_head", type=_int01, default=D.quant_head, choices=(False, True), metavar="0|1",
                   help=f"quantise the head too (default: {int(D.quant_head)})")
    p.add_argument("--strategy", default=D.strategy, choices=STRATEGIES,
                   help=f"the DeepSpeed ZeRO stage, as train.py's (default: {D.strategy})")
    p.add_argument("--grad_cp", type=_int01, default=D.grad_cp, choices=(False, True), metavar="0|1",
                   help=f"gradient checkpointing per block (default: {int(D.grad_cp)}, as the train_*.sh configs)")
    p.add_argument("--chunk_ctx", type=int, default=D.chunk_ctx, metavar="N",
                   help=f"infctx: the sample in chunks of N tokens; 0: whole (default: {D.chunk_ctx})")
    p.add_argument("--head_chunk", type=int, default=D.head_chunk, metavar="N",
                   help=f"the head and the loss over N tokens at a time; 0: all at once (default: {D.head_chunk})")
    p.add_argument("--precision", default=D.precision, choices=PRECISIONS,
                   help=f"bf16: bf16 weights and activations, fp32 adapters, the CUDA WKV kernel; fp32 (default: "
                        f"{D.precision})")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the text (default: off)")
    p.add_argument("--measured", default="", metavar="CSV",
                   help="compare with measured peaks: a CSV with the columns of these flags and peak_mib (a row "
                        "per run, e.g. from scripts/gpu_checks.sh); prints each row's error (default: none)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)

    def body() -> int:
        if args.measured:
            rows = compare_measured(args.measured)
            print(json.dumps(rows, indent=2) if args.json else "\n".join(r["line"] for r in rows))
            return 0
        fields = {k: v for k, v in vars(args).items() if k not in ("json", "measured")}
        request = PlanRequest(**fields)
        plan = plan_with_search(Planner(), request)
        print(json.dumps(plan.to_dict()) if args.json else plan.text())
        return 0

    return run_command("plan", body)


if __name__ == "__main__":
    sys.exit(main())
