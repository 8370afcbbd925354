"""src/bench/wkv.py (scripts/bench_wkv.sh) and src/bench/report.py: the WKV6 table and its docs section."""

import pytest

from src.bench.report import write_section
from src.bench.wkv import main


def test_cpu_table_into_its_section(tmp_path, capsys):
    md = tmp_path / "benchmarks.md"
    md.write_text("# Benchmarks\n\nintro\n\n<!-- wkv6:cpu -->\nold\n<!-- /wkv6:cpu -->\n\nafter\n")
    assert main(["--device", "cpu", "--B", "1", "--T", "32", "--C", "128", "--reps", "1", "--warmup", "0",
                 "--write", str(md)]) == 0
    text = md.read_text()
    assert text.startswith("# Benchmarks\n\nintro\n\n<!-- wkv6:cpu -->\n### WKV6 operator, CPU\n")
    assert text.endswith("<!-- /wkv6:cpu -->\n\nafter\n") and "old" not in text
    assert "| naive |" in text and "| chunked |" in text and "x faster than naive" in text
    assert "Shape B=1, T=32, C=128 (H=2, head size 64)" in text
    assert "Command: `python -m src.bench.wkv --device cpu" in capsys.readouterr().out


def test_wkv7_table_into_its_own_section(tmp_path):
    md = tmp_path / "benchmarks.md"
    assert main(["--op", "wkv7", "--device", "cpu", "--B", "1", "--T", "32", "--C", "128", "--reps", "1",
                 "--warmup", "0", "--write", str(md)]) == 0
    text = md.read_text()
    assert "<!-- wkv7:cpu -->\n### WKV7 operator, CPU\n" in text and "<!-- wkv6:cpu -->" not in text
    assert "| naive |" in text and "| chunked |" in text and "x faster than naive" in text


def test_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        main(["--device", "cpu", "--C", "100"])
    assert "--C 100 must be a multiple of the head size 64" in capsys.readouterr().err


def test_write_section_appends_then_replaces(tmp_path):
    md = tmp_path / "b.md"
    write_section(md, "k", "Title", "one\n")
    write_section(md, "other", "Other", "two\n")
    write_section(md, "k", "Title", "three\n")
    assert md.read_text() == ("# Benchmarks\n\n<!-- k -->\n### Title\n\nthree\n<!-- /k -->\n\n"
                              "<!-- other -->\n### Other\n\ntwo\n<!-- /other -->\n")
