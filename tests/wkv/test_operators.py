"""What every operator package owes the core: the same entry-point keywords and defaults, the same head-size
rule, and imports from src/wkv only, never from another operator package."""

import ast
import inspect

import pytest
import torch

from src.utils.paths import REPO_ROOT
from src.wkv6 import wkv6
from src.wkv7 import wkv7
from tests.helpers import wkv_inputs

OPERATORS = {"wkv6": wkv6, "wkv7": wkv7}


def keyword_only(fn):
    return {name: p.default for name, p in inspect.signature(fn).parameters.items() if p.kind is p.KEYWORD_ONLY}


def test_entry_points_take_the_same_keywords_with_the_same_defaults():
    expected = {"head_size": None, "chunk_size": 16, "backend": "auto"}
    for name, fn in OPERATORS.items():
        assert keyword_only(fn) == expected, name
        state = inspect.signature(fn).parameters["state"]
        assert state.default is None and state.kind is state.POSITIONAL_OR_KEYWORD, name


def test_both_read_the_head_size_off_their_per_head_tensors():
    r, k, v, w, u, state = wkv_inputs(1, 5, 2, N=8)
    y, s = wkv6(r, k, v, w, u, state, backend="naive")                 # N from u
    y_given, s_given = wkv6(r, k, v, w, u, state, head_size=8, backend="naive")
    assert torch.equal(y, y_given) and torch.equal(s, s_given)
    y, s = wkv7(r, w, k, v, -r, r, state, backend="naive")             # N from the state
    y_given, s_given = wkv7(r, w, k, v, -r, r, state, head_size=8, backend="naive")
    assert torch.equal(y, y_given) and torch.equal(s, s_given)


def test_a_head_size_that_contradicts_the_tensors_is_refused_by_both():
    r, k, v, w, u, state = wkv_inputs(1, 5, 2, N=8)
    with pytest.raises(ValueError, match=r"wkv6: u has shape \(2, 8\), expected \(H, N\) = \(4, 4\) for head_size = 4"):
        wkv6(r, k, v, w, u, state, head_size=4)
    with pytest.raises(ValueError, match=r"wkv7: state has shape \(1, 2, 8, 8\), expected \(B, H, N, N\) = \(1, 4, 4, 4\)"):
        wkv7(r, w, k, v, -r, r, state, head_size=4)


def imported_modules(path, package: str) -> list[str]:
    """The absolute names of the modules a file in src/<package>/ imports (relative imports resolved)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = {0: "", 1: f"src.{package}", 2: "src"}[node.level]
            names.append(".".join(part for part in (base, node.module) if part))
    return names


@pytest.mark.parametrize("package", ["wkv6", "wkv7"])
def test_an_operator_package_imports_no_other_operator_package(package):
    files = sorted((REPO_ROOT / "src" / package).glob("*.py"))
    assert len(files) == 5
    for path in files:
        modules = imported_modules(path, package)
        inside_src = {m.split(".")[1] for m in modules if m.startswith("src.")}
        assert inside_src <= {package, "wkv"}, f"{path.name} imports {modules}"
