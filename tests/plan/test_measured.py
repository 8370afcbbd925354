"""src/plan/measured.py: a measured CSV row beside the estimate."""

import pytest

from src.plan.measured import compare_measured, compare_row


@pytest.mark.slow
def test_row_and_file(tmp_path):
    row = {"model": "rwkv7-0.1b", "peft": "bone", "ctx_len": "1024", "grad_cp": "1", "peak_mib": "1000"}
    out = compare_row(row)
    assert out["error"] == pytest.approx(out["estimate_mib"] / 1000 - 1) and "measured 1,000 MiB" in out["line"]
    path = tmp_path / "m.csv"
    path.write_text("model,peft,ctx_len,grad_cp,peak_mib\nrwkv7-0.1b,bone,1024,1,1000\n")
    assert compare_measured(path)[0]["estimate_mib"] == out["estimate_mib"]
    with pytest.raises(ValueError, match="peak_mib"):
        compare_row({"model": "rwkv7-0.1b"})
