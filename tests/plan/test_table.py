"""src/plan/table.py: docs/memory.md's table is what the planner gives (one preset in the fast tier, all slow)."""

import pytest

from src.plan.table import BEGIN, END, main, table_presets, table_rows, write_section
from src.utils.paths import REPO_ROOT

DOC = REPO_ROOT / "docs" / "memory.md"


def doc_rows() -> list[str]:
    text = DOC.read_text()
    return [line for line in text[text.index(BEGIN):text.index(END)].splitlines() if line.startswith("| ") and "(" in line]


@pytest.mark.slow
def test_one_preset_matches_the_doc():
    rows = table_rows(["rwkv7-0.1b"], methods=("bone",))
    assert len(rows) == 1 and rows[0] in doc_rows()


@pytest.mark.slow
def test_the_whole_table_matches_the_doc():
    assert table_rows(table_presets()) == doc_rows()


def test_write_section(tmp_path):
    path = tmp_path / "m.md"
    path.write_text(f"intro\n{BEGIN}\nold\n{END}\nafter\n")
    write_section(path, "| new |\n")
    text = path.read_text()
    assert text == f"intro\n{BEGIN}\n| new |\n{END}\nafter\n"


@pytest.mark.slow
def test_the_command_writes_its_section(tmp_path):
    path = tmp_path / "m.md"
    assert main(["--models", "rwkv7-0.1b", "--write", str(path)]) == 0
    assert path.read_text().count("| rwkv7-0.1b (RWKV-7) |") == 6
