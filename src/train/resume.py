"""Resuming a run safely: what may change, whole trainer states, the abandoned future, the metrics.

A resumed run continues the same training: the data, the samples per step, the adapters and the
numerics must stay as the checkpoint's (changing them is refused, naming the flag and both
values); the schedule, the length and the other settings may change, and are printed. Resuming
from a checkpoint older than the newest moves the newer ones aside, so they cannot win a later
`--resume latest` or `merge.py --bone DIR`.
"""

from __future__ import annotations

import csv
import io
import json
import time
import zipfile
from pathlib import Path

from .config import TrainConfig
from .run_dir import RUN_CONFIG, TRAINER_STATE, checkpoint_step, checkpoints, resumable

# flags a resumed run must keep: they define its data, its samples and its trainable state
FIXED_ON_RESUME = ("data_file", "data_type", "ctx_len", "micro_bsz", "accumulate_grad_batches", "devices", "num_nodes",
                   "seed", "strategy", "precision", "peft", "peft_r", "lora_alpha", "lora_dropout", "bat_index",
                   "bat_materialize", "disha_r1", "pissa_niter", "peft_targets", "train_parts", "train_state",
                   "load_state", "quant", "quant_blocksize", "quant_head")
IGNORED = ("resume", "progress_bar", "proj_dir", "overwrite")      # where the run lives, how it shows itself


def saved_config(checkpoint: Path, proj_dir: Path) -> tuple[dict | None, Path | None]:
    """The settings a checkpoint was saved with (its own train_config.json, or else the run's)."""
    for path in (checkpoint / RUN_CONFIG, proj_dir / RUN_CONFIG):
        if path.is_file():
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError) as e:
                raise ValueError(f"--resume: {path} cannot be read ({e}); it records the run being resumed") from None
            if isinstance(data, dict):
                return data, path
    return None, None


def _same(flag: str, old, new) -> bool:
    if flag == "data_file" and old and new:
        return Path(old).resolve() == Path(new).resolve()
    if isinstance(old, (list, tuple)) or isinstance(new, (list, tuple)):
        return list(old or []) == list(new or [])
    return old == new


def compare(cfg: TrainConfig, checkpoint: Path) -> list[str]:
    """Refuse changed FIXED_ON_RESUME flags; return the other changes, as 'flag new (was old)'."""
    old, source = saved_config(checkpoint, Path(cfg.proj_dir))
    if old is None:
        raise ValueError(f"--resume {checkpoint}: neither {checkpoint / RUN_CONFIG} nor {Path(cfg.proj_dir) / RUN_CONFIG} "
                         f"exists, so this run's settings cannot be checked against the checkpoint's; restore one")
    new = cfg.to_flags()
    refused, allowed = [], []
    for flag, value in new.items():
        if flag in IGNORED or flag not in old or _same(flag, old[flag], value):
            continue
        (refused if flag in FIXED_ON_RESUME else allowed).append((flag, old[flag], value))
    if refused:
        changes = "; ".join(f"--{f} {v!r} here, {o!r} in the checkpoint" for f, o, v in refused)
        raise ValueError(f"--resume {checkpoint}: {changes} (from {source}). A resumed run keeps its data, samples, "
                         f"adapters and numerics; start a new --proj_dir to change them")
    return [f"--{f} {v} (was {o})" for f, o, v in allowed]


def check_trainer_state(checkpoint: Path, proj_dir: Path) -> None:
    """Every .pt file of trainer_state/ is whole: torch writes a zip whose directory comes last, so a
    truncated file has none. Names the file, and an earlier checkpoint to try."""
    for path in sorted((checkpoint / TRAINER_STATE).rglob("*.pt")):
        try:
            zipfile.ZipFile(path).close()
        except (zipfile.BadZipFile, OSError) as e:
            earlier = [d for s, d in resumable(proj_dir) if s < checkpoint_step(checkpoint)]
            hint = f"; try the one before it: --resume {earlier[-1]}" if earlier else ""
            raise ValueError(f"--resume {checkpoint}: {path} is truncated or damaged ({e}){hint}") from None


def abandon_newer(proj_dir: Path, step: int) -> Path | None:
    """Move the checkpoints newer than `step` into proj_dir/abandoned-<date>-<time>/; returns that directory."""
    newer = [d for s, d in checkpoints(proj_dir) if s > step]
    if not newer:
        return None
    destination = proj_dir / f"abandoned-{time.strftime('%Y%m%d-%H%M%S')}"
    destination.mkdir()
    for directory in newer:
        directory.rename(destination / directory.name)
    return destination


def check_metrics(path: Path, columns: list[str]) -> None:
    """metrics.csv, continued by a resumed run, must be readable: a header with the columns, whole numbers
    as steps."""
    if not path.exists():
        return
    try:
        reader = csv.DictReader(io.StringIO(path.read_text()))
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"its header lacks {missing}")
        for number, row in enumerate(reader, start=2):
            try:
                int(row["step"])
            except (TypeError, ValueError):
                raise ValueError(f"line {number} has the step {row['step']!r}") from None
    except (ValueError, UnicodeDecodeError, csv.Error) as e:
        raise ValueError(f"--resume: {path} cannot be continued: {e}; move it away (a new one is started) "
                         f"or repair it") from None
