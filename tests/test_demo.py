"""src/demo.py, the embedded-default main job: init, tokenise, train Bone on CPU, merge, check."""

import csv

import pytest

from src.demo import main


@pytest.mark.slow
def test_demo_trains_merges_and_checks(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["--out_dir", str(out), "--steps", "30", "--progress_bar", "0"]) == 0
    printed = capsys.readouterr().out
    assert "demo OK" in printed
    for name in ("rwkv6-tiny.pth", "sample.bin", "sample.idx", "rwkv6-tiny-bone-merged.pth",
                 "bone/metrics.csv", "bone/loss.png", "bone/checkpoint-000030/adapter_config.json"):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader((out / "bone" / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows] == list(range(1, 31))
    losses = [float(r["loss"]) for r in rows]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.3


@pytest.mark.slow
def test_demo_on_rwkv7(tmp_path, capsys):
    out = tmp_path / "demo7"
    assert main(["--out_dir", str(out), "--steps", "30", "--progress_bar", "0", "--model", "rwkv7"]) == 0
    printed = capsys.readouterr().out
    assert "demo OK" in printed and "tiny RWKV-7" in printed
    assert (out / "rwkv7-tiny-bone-merged.pth").is_file()


def test_demo_rejects_too_few_steps(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--out_dir", str(tmp_path), "--steps", "1"])
    assert "--steps must be at least 2" in capsys.readouterr().err
