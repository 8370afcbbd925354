"""The layout of a training run's directory (--proj_dir):

    train_config.json           the resolved configuration of the run
    base.pth                    the random initial model, when the run had no --load_model
    metrics.csv, loss.png       step, loss, lr, tokens/s, ... and their plot
    checkpoint-000100/          adapter.pth + adapter_config.json (what merge.py reads) and,
        trainer_state/          for the newest checkpoints, DeepSpeed's optimizer, scheduler,
                                step and data position (what --resume reads)
A checkpoint is written as .checkpoint-000100.tmp/ and renamed when complete, so a run
killed at any moment leaves only whole checkpoints. A fresh run replaces an earlier run's files
only with --overwrite, and never its checkpoints (check_run_directory).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..utils.files import same_file

TRAINER_STATE = "trainer_state"
RUN_CONFIG = "train_config.json"            # in proj_dir: the run's settings; in a checkpoint: those it was saved with
PATTERN = re.compile(r"checkpoint-(\d+)")
RUN_FILES = (RUN_CONFIG, "metrics.csv", "loss.png")       # what a run writes beside its checkpoints


def checkpoint_name(step: int) -> str:
    return f"checkpoint-{step:06d}"


def checkpoint_step(directory: str | Path) -> int:
    """checkpoint-000100 -> 100; anything else is an error that names the directory."""
    match = PATTERN.fullmatch(Path(directory).name)
    if match is None:
        raise ValueError(f"{directory} is not named like a checkpoint ({checkpoint_name(100)}): "
                         f"its step cannot be known")
    return int(match.group(1))


def checkpoints(proj_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, directory) of every complete checkpoint, oldest first."""
    proj_dir = Path(proj_dir)
    if not proj_dir.is_dir():
        return []
    found = [(int(m.group(1)), d) for d in proj_dir.iterdir() if d.is_dir() and (m := PATTERN.fullmatch(d.name))]
    return sorted(found)


def resumable(proj_dir: str | Path) -> list[tuple[int, Path]]:
    return [(s, d) for s, d in checkpoints(proj_dir) if (d / TRAINER_STATE).is_dir()]


def find_resume_checkpoint(proj_dir: str | Path, resume: str) -> Path | None:
    """--resume "" -> None; "latest" -> the newest resumable checkpoint (an error if none);
    "auto" -> the newest if any; a path -> that checkpoint directory."""
    if not resume:
        return None
    if resume in ("latest", "auto"):
        found = resumable(proj_dir)
        if found:
            return found[-1][1]
        if resume == "auto":
            return None
        raise ValueError(f"--resume: {proj_dir} holds no checkpoint with a {TRAINER_STATE}/ to resume from")
    path = Path(resume)
    if not (path / TRAINER_STATE).is_dir():
        raise ValueError(f"--resume {path}: not a checkpoint directory with a {TRAINER_STATE}/ inside")
    checkpoint_step(path)                     # the step, and so the metrics to keep, come from the name
    return path


def check_run_directory(proj_dir: Path, config_files: list, overwrite: bool, resume_from: Path | None) -> None:
    """Before anything is written: a fresh run replaces an earlier run's files only with --overwrite (its
    checkpoints never: --resume continues them), and no run writes over one of its own --config files."""
    proj_dir = Path(proj_dir)
    for source in config_files:
        if same_file(proj_dir / RUN_CONFIG, Path(source)):
            raise ValueError(f"--config {source} is the {RUN_CONFIG} this run writes; copy it elsewhere and pass "
                             f"the copy")
    if resume_from is not None:
        return
    found = checkpoints(proj_dir)
    if found:
        if resumable(proj_dir):
            raise ValueError(f"{proj_dir} already holds checkpoints of a run; pass --resume to continue it or "
                             f"choose another --proj_dir")
        raise ValueError(f"{proj_dir} already holds checkpoints of a run, none with a {TRAINER_STATE}/ to resume "
                         f"from (--keep_trainer_states 0): choose another --proj_dir (merge.py still takes their "
                         f"adapters)")
    earlier = [name for name in RUN_FILES if (proj_dir / name).exists()]
    if earlier and not overwrite:
        raise ValueError(f"{proj_dir} holds files of an earlier run ({', '.join(earlier)}) and no checkpoint: pass "
                         f"--overwrite to start a new run there, or choose another --proj_dir")
