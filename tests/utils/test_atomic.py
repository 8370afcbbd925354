"""src/utils/atomic.py: a failed write leaves the old file whole and no temporary behind."""

import pytest
import torch

from src.utils.atomic import atomic_torch_save, atomic_write, atomic_write_text


def test_write_and_replace(tmp_path):
    path = tmp_path / "sub" / "a.pth"
    atomic_torch_save({"x": torch.ones(3)}, path)
    atomic_torch_save({"x": torch.zeros(3)}, path)
    assert torch.equal(torch.load(path)["x"], torch.zeros(3))
    assert [p.name for p in path.parent.iterdir()] == ["a.pth"]


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "a.txt"
    atomic_write_text(path, "old")

    def half_then_crash(tmp):
        tmp.write_text("new but incompl")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, half_then_crash)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
