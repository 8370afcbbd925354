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


@pytest.mark.parametrize("stop", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_a_write_stopped_by_an_exception_or_ctrl_c_removes_its_temporary(tmp_path, stop):
    seen = []

    def stopped(tmp):
        tmp.write_text("half")
        seen.append(tmp)
        raise stop

    with pytest.raises(type(stop)):
        atomic_write(tmp_path / "a.txt", stopped)
    assert seen and seen[0].name.startswith(".a.txt.") and not seen[0].exists()
    assert list(tmp_path.iterdir()) == []


# (name left behind, is a directory, swept when "a.pth" is written)
STALE = [
    (".a.pth.abcd_123.tmp", False, True),        # our naming for a.pth: mkstemp's 8 characters
    (".a.pth.xy.tmp", False, False),             # not 8 characters: not ours
    (".a.pth.abcd_123", False, False),           # no .tmp suffix
    (".b.pth.abcd_123.tmp", False, False),       # another output's
    ("a.pth.abcd_123.tmp", False, False),        # not hidden
    (".a.pth.abcd_123.tmp", True, False),        # a directory of that name is not our file
]


@pytest.mark.parametrize("name, is_dir, swept", STALE)
def test_stale_temporaries_of_the_same_output_are_swept_with_a_note(tmp_path, capsys, name, is_dir, swept):
    left = tmp_path / name
    left.mkdir() if is_dir else left.write_bytes(b"partial")
    atomic_torch_save({"x": torch.ones(2)}, tmp_path / "a.pth")
    err = capsys.readouterr().err
    assert left.exists() != swept
    if swept:
        assert err.splitlines() == [f"note: removed 1 temporary file left in {tmp_path} by an interrupted write of "
                                    f"{tmp_path / 'a.pth'} ({name})"]
    else:
        assert err == ""
    assert torch.equal(torch.load(tmp_path / "a.pth")["x"], torch.ones(2))


def test_stale_temporary_directories_are_swept_too(tmp_path, capsys):
    from src.utils.atomic import new_temporary_directory
    for name in (".run.abcd_123", ".run.efgh_456"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "adapter.pth").write_bytes(b"partial")
    (tmp_path / ".run.abcd_123.tmp").write_bytes(b"")   # a file: a file target's, not this directory's
    fresh = new_temporary_directory(tmp_path, ".run.")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([fresh.name, ".run.abcd_123.tmp"])
    assert capsys.readouterr().err.splitlines() == [
        f"note: removed 2 temporary directories left in {tmp_path} by an interrupted write of {tmp_path / 'run'} "
        f"(.run.abcd_123, .run.efgh_456)"]
