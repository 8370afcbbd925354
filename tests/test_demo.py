"""src/demo.py, the embedded-default main job, runs end to end."""

import math

from src.demo import main, run


def test_demo_runs(tmp_path, capsys):
    result = run(tmp_path)
    assert result["checkpoint"].is_file()
    assert abs(result["loss"] - math.log(65536)) < 2.0
    assert result["max_rel_diff"] < 1e-4
    assert result["merged"].is_file() and result["merge_rel_diff"] < 3e-2
    assert main(["--out_dir", str(tmp_path / "again")]) == 0
    assert "demo OK" in capsys.readouterr().out
