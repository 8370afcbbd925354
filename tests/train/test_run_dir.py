"""src/train/run_dir.py: finding checkpoints and the one to resume from."""

import pytest

from src.train.run_dir import checkpoint_name, checkpoint_step, checkpoints, find_resume_checkpoint, resumable


def make(proj, step, state=True):
    d = proj / checkpoint_name(step)
    (d / "trainer_state" if state else d).mkdir(parents=True)
    return d


def test_listing_and_resume_choice(tmp_path):
    assert checkpoints(tmp_path / "none") == [] and find_resume_checkpoint(tmp_path, "auto") is None
    a, b, c = make(tmp_path, 100, state=False), make(tmp_path, 20), make(tmp_path, 1000, state=False)
    (tmp_path / ".checkpoint-002000.tmp").mkdir()             # half-written: never counted
    (tmp_path / "checkpoint-notes").mkdir()
    assert checkpoints(tmp_path) == [(20, b), (100, a), (1000, c)]
    assert resumable(tmp_path) == [(20, b)]
    assert find_resume_checkpoint(tmp_path, "latest") == b == find_resume_checkpoint(tmp_path, "auto")
    assert find_resume_checkpoint(tmp_path, str(b)) == b
    assert find_resume_checkpoint(tmp_path, "") is None
    with pytest.raises(ValueError, match=r"checkpoint-000100: not a checkpoint directory with a trainer_state/"):
        find_resume_checkpoint(tmp_path, str(a))


def test_latest_without_checkpoints_is_an_error(tmp_path):
    make(tmp_path, 5, state=False)
    with pytest.raises(ValueError, match="holds no checkpoint with a trainer_state/ to resume from"):
        find_resume_checkpoint(tmp_path, "latest")


def test_resume_from_a_directory_not_named_like_a_checkpoint(tmp_path):
    (tmp_path / "my-copy" / "trainer_state").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"my-copy is not named like a checkpoint \(checkpoint-000100\)"):
        find_resume_checkpoint(tmp_path, str(tmp_path / "my-copy"))
    assert checkpoint_step(make(tmp_path, 42)) == 42
