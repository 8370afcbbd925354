"""Writing results into docs/benchmarks.md: each benchmark owns a section between markers, which a
new run replaces, leaving the rest of the file as it was."""

from __future__ import annotations

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
