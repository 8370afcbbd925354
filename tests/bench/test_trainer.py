"""src/bench/trainer.py (scripts/bench_trainer.sh): train.py's step beside a plain loop's."""

import pytest

from src.bench.trainer import main, markdown

META = {"device": "CPU: x", "versions": "torch", "date": "2026-11-24", "command": "c", "model": "tiny",
        "dtype": "fp32", "ctx_len": 256, "micro_bsz": 2, "steps": 20, "warmup": 5, "pairs": 3}


def test_report():
    text = markdown({True: [0.96, 0.97, 0.95], False: [0.99, 0.98, 1.0]}, META)
    assert "| train.py (L2Wrap on, the default) | 0.960x | 0.960, 0.970, 0.950 |" in text
    assert "| train.py --l2wrap 0 | 0.990x |" in text and text.endswith("-> met\n")
    assert markdown({True: [0.9], False: [1.0]}, META).endswith("-> MISSED\n")


@pytest.mark.slow
def test_a_small_cpu_run(tmp_path):
    md = tmp_path / "benchmarks.md"
    assert main(["--device", "cpu", "--steps", "2", "--warmup", "1", "--pairs", "1", "--ctx_len", "32",
                 "--micro_bsz", "1", "--work_dir", str(tmp_path / "work"), "--write", str(md)]) == 0
    text = md.read_text()
    assert "<!-- trainer:cpu -->" in text and "| train.py --l2wrap 0 |" in text
