"""src/plan/against_table.py: the planner beside the benchmark table's measured rows and the paper's."""

import pytest

from src.plan.against_table import compare_table, main
from src.plan.measured import TOLERANCE

CSV = """device,method,r,grad_cp,micro_bsz,ctx_len,trainable_params,peak_mem_mb,peak_reserved_mb,tokens_per_s,date
NVIDIA H200,lora,32,0,1,512,55050240,11000,12000,3900,2026-12-03
NVIDIA H200,bat_materialized,64,0,1,512,55050240,20000,21000,2200,2026-12-03
NVIDIA H200,bone_nf4,64,1,1,512,55050240,6000,7000,3000,2026-12-03
NVIDIA H200,bone,64,0,1,512,,,,,2026-12-03
"""


@pytest.mark.slow
def test_rows_beside_the_estimates_and_the_paper(tmp_path, capsys):
    path = tmp_path / "t.csv"
    path.write_text(CSV)
    rows = compare_table(path, "3b")
    assert [r["method"] for r in rows] == ["lora", "bat_materialized", "bone_nf4"]      # unmeasured rows left out
    lora, bat, bone = rows
    assert lora["paper_mb"] == 12074 and bat["paper_mb"] == 22978 and bone["paper_mb"] is None
    assert lora["error"] == pytest.approx(lora["estimate_tensors_mib"] / 11000 - 1)
    assert bone["estimate_mib"] < lora["estimate_mib"]                 # nf4 base, checkpointing
    assert abs(lora["estimate_mib"] / 12074 - 1) < TOLERANCE            # the paper's LoRA row
    out = tmp_path / "b.md"
    assert main(["--table", str(path), "--model", "3b", "--write", str(out)]) == 0
    assert "| lora | 0 |" in out.read_text() and "12074" in out.read_text()
    assert main(["--table", str(tmp_path / "none.csv")]) == 2
    assert "no such file" in capsys.readouterr().err
