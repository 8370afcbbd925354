"""src/bench/adapters.py (scripts/bench_adapters.sh): every method timed beside the plain layer; the verdicts."""

from src.bench.adapters import GOALS, METHODS, main, markdown
from src.peft import METHODS as REGISTERED


def test_every_registered_method_is_measured():
    assert {c.method for c in METHODS.values()} == set(REGISTERED)


def results(**ratios):
    row = {name: {"ms": 10.0, "ratio": ratios.get(name, 1.1), "peak_mb": None} for name in METHODS}
    return {"C -> C": {"plain": {"ms": 9.0, "ratio": 1.0, "peak_mb": None}, **row}}


META = {"device": "CPU: x", "device_kind": "cpu", "versions": "torch", "date": "2026-11-24", "command": "c",
        "tokens": 512, "dtype": "float32", "reps": 5, "warmup": 1}


def test_verdicts():
    text = markdown(results(**{"bat(out) r64": 1.8, "bat materialized r64": 2.4}), META)
    assert "| bat(out) r64 | 1.80x |" in text and text.count("-> met") == len(GOALS)
    slower = markdown(results(**{"bat(out) r64": 1.8, "bat materialized r64": 1.7}), META)
    assert "at most 1.06x the materialising Bat's time (goal <= 1.00) -> MISSED" in slower
    assert "lora r32: at most 1.30x the plain layer (goal <= 1.20x) -> MISSED" in markdown(results(**{"lora r32": 1.3}),
                                                                                             META)


def test_a_small_cpu_run_writes_its_section(tmp_path, capsys):
    md = tmp_path / "benchmarks.md"
    assert main(["--device", "cpu", "--scale", "0.05", "--tokens", "16", "--reps", "1", "--warmup", "0",
                 "--shapes", "C -> 3.5C", "--write", str(md)]) == 0
    text = md.read_text()
    assert "<!-- adapters:cpu -->" in text and "### One adapted layer, CPU" in text
    assert all(f"| {name} |" in text for name in METHODS) and "C -> 3.5C (" in text
