"""docs/memory.md's table: every preset of every family x every adapter method, estimated peaks.

    python -m src.plan.table --write docs/memory.md      # regenerate the section between its markers
    python -m src.plan.table                             # print it

One card, micro batch 1, grad_cp 1, bf16, ZeRO stage 1, r 64, at ctx 1024 and 4096, with the base in
bf16 and in nf4: GiB from the planner (estimates, not measurements). The presets come from the model
registry (preset_names of every family) and the methods from src/peft/registry.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..model import families, preset_names
from ..peft.registry import PEFT_METHODS
from ..utils.atomic import atomic_write_text
from ..utils.cli import run_command
from .plan import GIB, Planner
from .request import PlanRequest

BEGIN, END = "<!-- plan-table:begin -->", "<!-- plan-table:end -->"
CTX_LENS = (1024, 4096)
QUANTS = ("none", "nf4")


def table_presets(include_tiny: bool = False) -> list[str]:
    """Every family's presets, smallest first, without the test-sized 'tiny' ones."""
    names = [n for f in families() for n in preset_names(f.name)]
    return [n for n in names if include_tiny or not n.endswith("tiny")]


def table_rows(presets: list[str], planner: Planner | None = None, methods: tuple[str, ...] = PEFT_METHODS) -> list[str]:
    """The table's markdown rows, one per preset and method."""
    planner = planner or Planner()
    rows = []
    for preset in presets:
        for method in methods:
            cells = []
            for quant in QUANTS:
                for ctx in CTX_LENS:
                    plan = planner.estimate(PlanRequest(model=preset, peft=method, rank=64, ctx_len=ctx, quant=quant))
                    cells.append(f"{plan.peak_bytes / GIB:.1f}")
            title = planner.estimate(PlanRequest(model=preset, peft=method)).model_title
            rows.append(f"| {preset} ({title}) | {method} | " + " | ".join(cells) + " |")
    return rows


def table_markdown(presets: list[str] | None = None, planner: Planner | None = None) -> str:
    head = ("| model | method | bf16, ctx 1024 | bf16, ctx 4096 | nf4, ctx 1024 | nf4, ctx 4096 |\n"
            "|---|---|---:|---:|---:|---:|")
    return head + "\n" + "\n".join(table_rows(presets or table_presets(), planner)) + "\n"


def write_section(path: Path, markdown: str) -> None:
    """Put `markdown` between the BEGIN and END markers of `path` (appended with them when absent)."""
    text = path.read_text() if path.exists() else ""
    block = f"{BEGIN}\n{markdown}{END}"
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text = text + ("\n" if text and not text.endswith("\n") else "") + block + "\n"
    atomic_write_text(path, text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m src.plan.table", description=__doc__.split("\n\n")[0])
    p.add_argument("--write", default="", metavar="FILE",
                   help="write the table between its markers in FILE (docs/memory.md); empty: print it (default: print)")
    p.add_argument("--models", default="", metavar="LIST",
                   help="comma list of presets; empty: every preset but the tiny ones (default: all)")
    args = p.parse_args(argv)

    def body() -> int:
        presets = [m.strip() for m in args.models.split(",") if m.strip()] or table_presets()
        markdown = table_markdown(presets)
        if args.write:
            write_section(Path(args.write), markdown)
        else:
            print(markdown, end="")
        return 0

    return run_command("plan.table", body)


if __name__ == "__main__":
    sys.exit(main())
