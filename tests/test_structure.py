"""The shape of src/: no import cycles, nothing without a caller, family names only inside family code.

Read from the source text (ast), nothing imported: imports at any depth count (a cycle hidden inside a
function is still a cycle), and a top-level function or class must be named somewhere outside its own
definition in src/, the top-level scripts or scripts/ (tests do not count as callers)."""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

from src.utils.paths import REPO_ROOT

SRC = REPO_ROOT / "src"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def runtime_nodes(tree: ast.AST):
    """Every node, at any depth, except what `if TYPE_CHECKING:` holds (never run)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The src modules `name` imports, at any depth: `from .x import y` is x, or x.y when y is a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                target = f"{base}.{alias.name}"
                found.add(target if target in known else base)
    return {m for m in found if m in known and m != name}


def test_no_import_cycles():
    known = modules()
    graph = {name: imports_of(name, path, known) for name, path in known.items()}
    assert graph["src.model.rwkv6.network"] >= {"src.model.base", "src.wkv6"}        # the walk sees imports
    state, cycles = {}, []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def callers_text() -> dict[Path, str]:
    files = [*SRC.rglob("*.py"), *REPO_ROOT.glob("*.py"), *(REPO_ROOT / "scripts").glob("*.sh")]
    return {p: p.read_text() for p in files}


def test_every_function_and_class_has_a_caller():
    texts = callers_text()
    words = Counter(w for text in texts.values() for w in re.findall(r"\w+", text))
    unused = []
    for name, path in modules().items():
        tree = ast.parse(texts[path])
        for node in tree.body:
            if not isinstance(node, (ast.FunctionDef, ast.ClassDef)) or node.name == "main":
                continue                                  # main: the commands' entry points, named by module
            own = re.findall(r"\w+", ast.get_source_segment(texts[path], node)).count(node.name)
            uses = words[node.name] - own
            if uses == 0:
                unused.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno} {node.name}")
    assert not unused, "defined but never used outside their own definition: " + ", ".join(unused)


FAMILY_CODE = ("src/model/rwkv6/", "src/model/rwkv7/", "src/wkv6/", "src/wkv7/", "src/model/families.py",
               "src/model/aliases.py")


def test_family_names_are_not_compared_outside_family_code():
    """What differs per family lives in its family module: no `family == "x070"` or `isinstance(config,
    RWKV7Config)` anywhere else (the registry is read instead)."""
    offending = []
    comparison = re.compile(r"""(==|!=|\bin\b)\s*\(?\s*["']x0[67]0["']|["']x0[67]0["']\s*(==|!=)|"""
                            r"""isinstance\([^)]*RWKV[67](Config)?\b""")
    for path in SRC.rglob("*.py"):
        where = str(path.relative_to(REPO_ROOT))
        if where.startswith(FAMILY_CODE):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if comparison.search(line):
                offending.append(f"{where}:{number}: {line.strip()}")
    assert not offending, "family checks outside family code:\n" + "\n".join(offending)
