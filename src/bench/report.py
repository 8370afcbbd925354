"""Writing results into docs/benchmarks.md: each benchmark owns a section between markers, which a
new run replaces, leaving the rest of the file as it was."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from ..utils.atomic import atomic_write_text


def write_section(path: Path, key: str, title: str, body: str) -> None:
    """Replace (or append) the block between <!-- key --> and <!-- /key --> in path."""
    start, end = f"<!-- {key} -->", f"<!-- /{key} -->"
    block = f"{start}\n### {title}\n\n{body}{end}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        _, after = rest.split(end, 1)
        text = before + block + after
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    atomic_write_text(path, text)


def fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a and b else "-"


def add_write_flag(parser: argparse.ArgumentParser, script: str) -> None:
    parser.add_argument("--write", default=None, metavar="FILE",
                        help=f"put the table into this Markdown file's section (default: none; {script} gives "
                             f"docs/benchmarks.md)")


def command_line(prefix: str, argv: list[str] | None) -> str:
    """How the benchmark was run, for the report: prefix + its arguments, quoted for a shell."""
    return " ".join([prefix, *(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))])


def publish(text: str, path: str | None, key: str, title: str, device: str) -> None:
    """Print the report and, with a path, put it into that file's section <key>:cpu or <key>:gpu."""
    print(text)
    if path:
        kind = "GPU" if device == "cuda" else "CPU"
        write_section(Path(path), f"{key}:{kind.lower()}", f"{title}, {kind}", text)
        print(f"written to {path}")
