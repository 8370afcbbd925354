"""src/bench/table.py and table_report.py (scripts/bench_table.sh): the report on synthetic rows, the arithmetic, one real row."""

import csv

import pytest

from src.bench.table import main, matmul_parameters, row_flags
from src.bench.table_report import (SCALE_COLUMNS, TABLE_COLUMNS, TABLE_ROWS, goals, markdown, merged_rows, plot,
                                    write_csv)
from src.model import RWKV6Config, parameter_shapes


def row(method, mb, tps, grad_cp=0, device="NVIDIA H100 80GB HBM3", **extra):
    return {"device": device, "method": method, "r": row_flags(method)["peft_r"], "grad_cp": grad_cp,
            "micro_bsz": 1, "ctx_len": 512, "trainable_params": 55_050_240, "peak_mem_mb": mb,
            "peak_reserved_mb": mb * 1.1, "tokens_per_s": tps, "date": "2026-11-24", **extra}


GOOD = [row("lora", 1000, 100), row("bone", 950, 115), row("bat_out", 1090, 90), row("bat_in", 1000, 110),
        row("bat_materialized", 2000, 60)]


def meta(device_kind="cuda", model="3b", **changes):
    return {"device": "NVIDIA H100 80GB HBM3", "device_kind": device_kind, "versions": "torch 2.13.0",
            "date": "2026-11-24", "command": "bash scripts/bench_table.sh", "model": model, "micro_bsz": 1,
            "ctx_len": 512, "measured": 25, "warmup": 5, "csv": "docs/bench/x.csv", "png": "docs/bench/x.png",
            "P": 3_000_000_000, "matmul_tflops": 700.0, **changes}


def test_goals():
    lines = goals(GOOD)
    assert len(lines) == 4 and all(line.endswith("-> met") for line in lines[:3])
    assert "Bone / LoRA: speed 1.15x (goal >= 1.10), memory 0.95x (goal <= 1.00)" in lines[0]
    assert "speed 0.52x, memory 2.11x (the paper: 0.54x, 2.08x)" in lines[3]
    bad = [row("lora", 1000, 100), row("bone", 1010, 120), row("bat_in", 1200, 110)]
    assert [line.endswith("MISSED") for line in goals(bad)] == [True, True]
    assert not any("->" in line for line in goals(bad, verdicts=False))


def test_gpu_report_sets_ours_beside_the_paper():
    scale = [row("bone", 30000, 20000, grad_cp=1, micro_bsz=8, ctx_len=4096, model_tflops_per_s=240.0, mfu=0.343)]
    text = markdown(GOOD + [row("bone", 900, 120, grad_cp=1)], scale, meta())
    assert "| bone | 0 | 55,050,240 | 950 | 1045 | 115 | 11052 | 3.99 | 0.09 | 0.03 |" in text
    assert "| bone | 1 | 55,050,240 | 900 | 990 | 120 | 15304 | 4.00 | 0.06 | 0.03 |" in text
    assert "-> met" in text and "smoke run" not in text
    assert "| bone | 8 | 4096 | 20000 | 30000 | 240 | 34.3% |" in text


def test_cpu_report_is_labelled_and_gives_no_verdicts():
    rows = [row(m, r["peak_mem_mb"], r["tokens_per_s"], device="CPU: x") for m, r in
            zip(TABLE_ROWS, GOOD)]
    text = markdown(rows, [], meta(device_kind="cpu", model="tiny"))
    assert "**CPU smoke run of the script, not a result**" in text
    assert "Bone / LoRA: speed 1.15x (goal >= 1.10)" in text
    assert "-> met" not in text and "MISSED" not in text
    assert "| 11052 |" not in text                                      # the paper's 3B figures: GPU rows only


def test_an_out_of_memory_row_is_reported(tmp_path):
    rows = GOOD[:1] + [{**GOOD[1], "error": "out of memory", "peak_mem_mb": None, "tokens_per_s": None}]
    assert "| bone | 0 | - | out of memory |" in markdown(rows, [], meta())
    write_csv(tmp_path / "t.csv", rows, TABLE_COLUMNS)
    written = list(csv.DictReader(open(tmp_path / "t.csv")))
    assert list(written[0]) == TABLE_COLUMNS + ["error"] and written[1]["error"] == "out of memory"


def test_csv_keeps_other_rows_when_one_is_measured_again(tmp_path):
    path = tmp_path / "t.csv"
    write_csv(path, GOOD + [row("bone", 900, 120, grad_cp=1), row("bone", 800, 90, device="CPU: x")], TABLE_COLUMNS)
    again = merged_rows(path, [row("bone", 901, 121, grad_cp=1)])
    write_csv(path, again, TABLE_COLUMNS)
    rows = list(csv.DictReader(open(path)))
    assert list(rows[0]) == TABLE_COLUMNS and len(rows) == 7
    changed = [r for r in rows if r["method"] == "bone" and r["grad_cp"] == "1"]
    assert [(r["peak_mem_mb"], r["tokens_per_s"]) for r in changed] == [("901", "121")]
    assert [r["method"] for r in rows if r["device"].startswith("NVIDIA") and r["grad_cp"] == "0"] == \
        [r["method"] for r in GOOD]


def test_plot(tmp_path):
    plot(GOOD + [row("bone", 900, 120, grad_cp=1)], tmp_path / "t.png", "title")
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG" and [p.name for p in tmp_path.iterdir()] == ["t.png"]


def test_flops_count_on_3b():
    C, F, L, V, mix, decay = 2560, 8960, 32, 65536, 32, 64
    per_block = 5 * C * C + C * F + C * C + F * C + C * 5 * mix + 5 * mix * C + C * decay + decay * C
    assert matmul_parameters("3b") == L * per_block + V * C


def test_rows_of_the_paper_and_of_the_registry():
    assert row_flags("bat_in") == {"peft": "bat", "peft_r": 64, "bat_index": "in"}
    assert row_flags("disha") == {"peft": "disha", "peft_r": 64}


def test_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        main(["--methods", "bone,dora"])
    assert "unknown ['dora']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--steps", "3", "--warmup", "5"])


@pytest.mark.slow
def test_one_real_row_in_a_fresh_process(tmp_path):
    out, md = tmp_path / "bench", tmp_path / "benchmarks.md"
    md.write_text("# Benchmarks\n\nkept\n")
    assert main(["--methods", "bone", "--grad_cp", "1", "--steps", "3", "--warmup", "1", "--ctx_len", "32",
                 "--scale", "--scale_ctx_len", "64", "--scale_micro_bsz", "2", "--out_dir", str(out),
                 "--markdown", str(md), "--work_dir", str(tmp_path / "work")]) == 0
    (measured,) = list(csv.DictReader(open(out / "rwkv6-tiny-table.csv")))
    assert (measured["method"], measured["grad_cp"], measured["r"], measured["ctx_len"]) == ("bone", "1", "64", "32")
    assert measured["trainable_params"] == "172032"                     # 2 layers x 8 linears x 64 x out
    model_mb = sum(s.numel() for s in parameter_shapes(RWKV6Config.preset("tiny")).values()) * 4 / 2**20
    assert float(measured["peak_mem_mb"]) > model_mb                     # the fp32 model itself was resident
    assert float(measured["tokens_per_s"]) > 0 and measured["device"].startswith("CPU")
    scale = list(csv.DictReader(open(out / "rwkv6-tiny-scale.csv")))
    assert list(scale[0]) == SCALE_COLUMNS and [r["method"] for r in scale] == ["lora", "bone"]
    assert all(0 < float(r["mfu"]) < 1 and r["ctx_len"] == "64" for r in scale)
    text = md.read_text()
    assert "kept" in text and "<!-- table:cpu -->" in text and "| bone | 1 | 172,032 |" in text
    assert not list((tmp_path / "work").glob("*-cp*-*"))                # run directories removed
