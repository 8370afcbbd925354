"""src/bench/head.py (scripts/bench_head.sh): the head-chunk table and its docs section."""

from src.bench.head import main


def test_cpu_table_into_its_section(tmp_path, capsys):
    md = tmp_path / "benchmarks.md"
    assert main(["--ctx_lens", "64,128", "--head_chunk", "32", "--rank", "8", "--write", str(md)]) == 0
    text = md.read_text()
    assert "<!-- head:cpu -->\n### The head and the loss in chunks, CPU\n" in text
    rows = [line for line in text.splitlines() if line.startswith("| 64 |") or line.startswith("| 128 |")]
    assert len(rows) == 2
    # the (T, vocab) fp32 tensor: 128 * 65536 * 4 bytes = 32 MiB, and the step's peak drops by more than one
    assert rows[1].startswith("| 128 | 32 MiB |")
    saved = float(rows[1].split("|")[7].split("MiB")[0].replace(",", ""))
    assert saved > 32
    assert "Command: `python -m src.bench.head --ctx_lens 64,128" in capsys.readouterr().out
