"""src/train/run_dir.py: finding checkpoints and the one to resume from; what a fresh run may replace."""

import pytest

from src.train.run_dir import (check_run_directory, checkpoint_name, checkpoint_step, checkpoints, find_resume_checkpoint,
                               resumable)


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


def test_a_fresh_run_replaces_only_an_earlier_runs_files_and_only_with_overwrite(tmp_path):
    check_run_directory(tmp_path / "new", [], overwrite=False, resume_from=None)
    (tmp_path / "metrics.csv").write_text("step,loss\n")
    with pytest.raises(ValueError, match=r"holds files of an earlier run \(metrics.csv\) and no checkpoint: pass "
                                         r"--overwrite"):
        check_run_directory(tmp_path, [], overwrite=False, resume_from=None)
    check_run_directory(tmp_path, [], overwrite=True, resume_from=None)
    make(tmp_path, 3, state=False)
    with pytest.raises(ValueError, match=r"none with a trainer_state/ to resume from \(--keep_trainer_states 0\)"):
        check_run_directory(tmp_path, [], overwrite=True, resume_from=None)
    resumed = make(tmp_path, 4)
    with pytest.raises(ValueError, match=r"already holds checkpoints of a run; pass --resume to continue it"):
        check_run_directory(tmp_path, [], overwrite=True, resume_from=None)
    check_run_directory(tmp_path, [], overwrite=False, resume_from=resumed)


def test_no_run_writes_over_its_own_config_file(tmp_path):
    (tmp_path / "train_config.json").write_text("{}")
    (tmp_path / "link.json").symlink_to(tmp_path / "train_config.json")
    with pytest.raises(ValueError, match=r"link.json is the train_config.json this run writes; copy it elsewhere"):
        check_run_directory(tmp_path, [tmp_path / "link.json"], overwrite=True, resume_from=make(tmp_path, 4))
