"""src/bench.py (scripts/bench_table.sh): the table's CPU path, its files and its arithmetic."""

import csv
import math

import pytest

from src.bench import SCALE_COLUMNS, TABLE_COLUMNS, goals, main, matmul_parameters


def test_cpu_run_writes_the_table(tmp_path):
    out, md = tmp_path / "bench", tmp_path / "benchmarks.md"
    md.write_text("# Benchmarks\n\nkept\n")
    assert main(["--steps", "3", "--warmup", "1", "--ctx_len", "32", "--scale", "--scale_ctx_len", "64",
                 "--scale_micro_bsz", "2", "--out_dir", str(out), "--markdown", str(md),
                 "--work_dir", str(tmp_path / "work")]) == 0
    rows = list(csv.DictReader(open(out / "rwkv6-tiny-table.csv")))
    assert list(rows[0]) == TABLE_COLUMNS
    assert [(r["method"], r["grad_cp"]) for r in rows] == [
        (m, g) for g in ("0", "1") for m in ("lora", "bone", "bat_out", "bat_in", "bat_materialized")]
    assert {r["trainable_params"] for r in rows} == {"172032"}              # equal budgets, as in the paper
    assert {r["r"] for r in rows} == {"32", "64"}
    assert all(float(r["tokens_per_s"]) > 0 and float(r["peak_mem_mb"]) > 100 for r in rows)
    assert all(r["device"].startswith("CPU") and r["micro_bsz"] == "1" and r["ctx_len"] == "32" for r in rows)
    scale = list(csv.DictReader(open(out / "rwkv6-tiny-scale.csv")))
    assert list(scale[0]) == SCALE_COLUMNS and [r["method"] for r in scale] == ["lora", "bone"]
    assert all(0 < float(r["mfu"]) < 1 and r["ctx_len"] == "64" for r in scale)
    assert (out / "rwkv6-tiny-table.png").read_bytes()[:4] == b"\x89PNG"
    text = md.read_text()
    assert "kept" in text and "<!-- table:cpu -->" in text and "CPU smoke run of the script, not a result" in text
    assert "| bat_materialized | 1 | 172,032 |" in text and "MISSED" not in text
    assert not list((tmp_path / "work").glob("*-cp*-*"))                    # run directories removed
    # a second run of one row replaces that row only
    assert main(["--steps", "2", "--warmup", "1", "--ctx_len", "32", "--methods", "bone", "--grad_cp", "1",
                 "--out_dir", str(out), "--markdown", str(md), "--work_dir", str(tmp_path / "work")]) == 0
    again = list(csv.DictReader(open(out / "rwkv6-tiny-table.csv")))
    assert [(r["method"], r["grad_cp"]) for r in again] == [(r["method"], r["grad_cp"]) for r in rows]
    changed = [i for i, (a, b) in enumerate(zip(rows, again)) if a != b]
    assert changed == [6]                                                   # bone, grad_cp 1


def test_flops_count_on_3b():
    C, F, L, V, mix, decay = 2560, 8960, 32, 65536, 32, 64
    per_block = 5 * C * C + C * F + C * C + F * C + C * 5 * mix + 5 * mix * C + C * decay + decay * C
    assert matmul_parameters("3b") == L * per_block + V * C


def row(method, mb, tps, grad_cp=0):
    return {"method": method, "grad_cp": grad_cp, "peak_mem_mb": mb, "tokens_per_s": tps}


def test_goals():
    good = [row("lora", 1000, 100), row("bone", 950, 115), row("bat_in", 1000, 110), row("bat_out", 1090, 90),
            row("bat_materialized", 2000, 60)]
    lines = goals(good)
    assert len(lines) == 4 and all(line.endswith("-> met") for line in lines[:3])
    assert "Bone / LoRA: speed 1.15x (goal >= 1.10), memory 0.95x (goal <= 1.00)" in lines[0]
    assert "speed 0.52x, memory 2.11x (the paper: 0.54x, 2.08x)" in lines[3]
    bad = [row("lora", 1000, 100), row("bone", 1010, 120), row("bat_in", 1200, 110)]
    assert [line.endswith("MISSED") for line in goals(bad)] == [True, True]
    assert not any("->" in line for line in goals(bad, verdicts=False))


def test_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        main(["--methods", "bone,dora"])
    assert "unknown ['dora']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--steps", "3", "--warmup", "5"])
