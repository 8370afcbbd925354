"""A run without --load_model trains from a random init of --model, kept in proj_dir as base.pth (what
merge.py --base takes) with base.json, how it was made: the shapes and the seed. A base.pth already
there is reused only when it is this run's."""

from __future__ import annotations

import json
from pathlib import Path

from ..model import config_from_checkpoint, read_checkpoint, save_checkpoint
from ..utils.atomic import atomic_write_text
from .config import TrainConfig

BASE, BASE_RECORD = "base.pth", "base.json"        # a run's random initial model, and how it was made


def base_path(cfg: TrainConfig) -> Path:
    """The base .pth of the run: --load_model, or the random init saved in proj_dir."""
    return Path(cfg.load_model) if cfg.load_model else Path(cfg.proj_dir) / BASE


def random_base_differences(proj_dir: Path, model_config, seed: int, resuming: bool) -> list[str] | None:
    """None: proj_dir holds no base.pth; []: its base.pth is this run's (made from the same shapes and
    seed); else how the base.pth there differs from what this run would make."""
    base, record = proj_dir / BASE, proj_dir / BASE_RECORD
    if not base.exists():
        return None
    wanted = {"shapes": model_config.shape_signature(), "seed": seed}
    try:
        made = json.loads(record.read_text())
    except (OSError, ValueError):
        made = None
    if not isinstance(made, dict):
        found = config_from_checkpoint(read_checkpoint(base), source=str(base)).shape_signature()
        if resuming and found == wanted["shapes"]:
            return []                                           # a run from before base.json was written
        made = {"shapes": found, "seed": "unknown (no readable base.json)"}
    return [f"{k} {made.get(k)} there, {v} here" for k, v in wanted.items() if made.get(k) != v]


def check_random_base(cfg: TrainConfig, model_config) -> None:
    """A base.pth already in proj_dir is reused only when it is this run's; another is replaced only
    with --overwrite (and never under a resumed run)."""
    differs = random_base_differences(Path(cfg.proj_dir), model_config, cfg.seed, resuming=bool(cfg.resume))
    if differs and (cfg.resume or not cfg.overwrite):
        base = Path(cfg.proj_dir) / BASE
        raise ValueError(f"{base} was made for another run ({'; '.join(differs)}): choose another --proj_dir"
                         + ("" if cfg.resume else ", or pass --overwrite to make a new one"))


def is_this_runs_base(cfg: TrainConfig, model_config) -> bool:
    """proj_dir holds the random base this run would make (the same shapes and seed): load it."""
    return random_base_differences(Path(cfg.proj_dir), model_config, cfg.seed, bool(cfg.resume)) == []


def save_random_base(model_or_state, cfg: TrainConfig, model_config, dtype) -> None:
    """proj_dir/base.pth (of a model or its state dict), and beside it base.json: the preset and the
    shapes and seed it was made from."""
    base = Path(cfg.proj_dir) / BASE
    save_checkpoint(model_or_state, base, dtype=dtype)
    record = {"model": cfg.model, "shapes": model_config.shape_signature(), "seed": cfg.seed}
    atomic_write_text(base.with_name(BASE_RECORD), json.dumps(record, indent=2) + "\n")
    print(f"random initial model saved as {base} (merge.py --base {base})", flush=True)
