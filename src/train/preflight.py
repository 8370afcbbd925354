"""Everything a run can check before a model is loaded or a file written, so that a run that cannot
work stops at once with a one-line error naming the flag.

`check_run(cfg)` does it all, in order: the values (config.validate); `preflight`: the device,
the logger's package, the base model's shapes and family (memory-mapped, nothing loaded), the
adapters' fit to them (on the meta device), the data against the vocabulary; the run directory
(run_dir.py); a resume's trainer state, settings, adapter and the base it was trained on, metrics and
step count (`check_resume`). The one check left, restoring the trainer state, comes as training starts
and before anything is written there (assemble.RunRecord).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..data import BinIdx
from ..model import (RWKVConfig, build_model, config_from_checkpoint, family_of, read_checkpoint, read_state_file,
                     resolve_config)
from ..peft import apply_peft, read_adapter
from ..peft.apply import resolve_targets
from ..quant import check_quantizable
from ..quant.backend import bnb_functional
from ..utils.files import file_fingerprint
from .callbacks import REQUIRED_COLUMNS
from .config import TrainConfig, validate
from .random_base import BASE, base_path, check_random_base
from .resume import check_metrics, check_trainer_state, compare, saved_config
from .objective import objective_class
from .run_dir import check_run_directory, checkpoint_step, find_resume_checkpoint


@dataclass(frozen=True)
class CheckedRun:
    """What the checks found: the model's config, and where a resumed run starts."""
    model_config: RWKVConfig
    resume_from: Path | None              # the checkpoint to resume from; None: a fresh run
    resume_step: int                      # its step; 0 for a fresh run
    changed: list[str]                    # the settings a resumed run changes, as "--flag new (was old)"


def check_run(cfg: TrainConfig) -> CheckedRun:
    """Every check before the first write and the first weight loaded (see the module docstring)."""
    validate(cfg)
    model_config = preflight(cfg)
    resume_from = find_resume_checkpoint(Path(cfg.proj_dir), cfg.resume)
    check_run_directory(Path(cfg.proj_dir), cfg.sources, cfg.overwrite, resume_from)
    if resume_from is None:
        return CheckedRun(model_config, None, 0, [])
    changed = check_resume(cfg, resume_from)
    return CheckedRun(model_config, resume_from, checkpoint_step(resume_from), changed)


def preflight(cfg: TrainConfig) -> RWKVConfig:
    """What can be checked before loading a model, beyond the values themselves: the device, the
    logger's package, the base model's shapes and family (memory-mapped, nothing loaded), the
    adapters' fit to them (on the meta device) and the data. Returns the model's config (of its
    family). Adapters without explicit targets get the family's (Family.default_targets)."""
    accelerator = cfg.resolved_accelerator
    if accelerator == "gpu":
        available = torch.cuda.device_count()
        if available == 0:
            raise ValueError("--accelerator gpu (or --gpus N): no CUDA device is visible on this machine")
        if cfg.devices > available:
            raise ValueError(f"--devices {cfg.devices}: only {available} CUDA device(s) are visible")
    if cfg.log in ("wandb", "tensorboard"):
        import importlib.util
        package = "wandb" if cfg.log == "wandb" else "tensorboard"
        if importlib.util.find_spec(package) is None and not (package == "tensorboard"
                                                              and importlib.util.find_spec("tensorboardX")):
            raise ValueError(f"--log {cfg.log} needs the {package} package (pip install {package})")

    proj_dir = Path(cfg.proj_dir)
    if proj_dir.exists() and not proj_dir.is_dir():
        raise ValueError(f"--proj_dir {proj_dir} is a file, not a directory")

    if cfg.load_model:
        if Path(cfg.load_model).is_dir():
            raise ValueError(f"--load_model {cfg.load_model} is a directory; give the .pth file")
        if not Path(cfg.load_model).is_file():
            raise ValueError(f"--load_model {cfg.load_model} does not exist")
        model_config = config_from_checkpoint(read_checkpoint(cfg.load_model), source=cfg.load_model)
        if cfg.model:                                         # --model 3b --load_model rwkv6-3b.pth: must agree
            named, found = resolve_config(cfg.model).shape_signature(), model_config.shape_signature()
            keys = [*named, *(k for k in found if k not in named)]
            wrong = {k: (named.get(k), found.get(k)) for k in keys if named.get(k) != found.get(k)}
            if wrong:
                detail = ", ".join(f"{k} {a} vs {b}" for k, (a, b) in wrong.items())
                raise ValueError(f"--model {cfg.model} does not describe --load_model {cfg.load_model} "
                                 f"(--model vs checkpoint: {detail})")
    elif cfg.model:
        model_config = resolve_config(cfg.model)
        check_random_base(cfg, model_config)
    else:
        raise ValueError("give --load_model BASE.pth (to fine-tune) or --model PRESET|CONFIG.json (random init)")

    if cfg.quant_scheme is not None:                          # before any weight is loaded
        bnb_functional("cuda" if accelerator == "gpu" else "cpu")
        with torch.device("meta"):
            check_quantizable(build_model(model_config), cfg.quant_scheme)
    if cfg.peft is not None:
        resolved = resolve_targets(cfg.peft, model_config.family)
        if resolved != cfg.peft:
            cfg.peft = resolved
            cfg.derived["peft_targets"] = f"the linear layers of {family_of(model_config).title}'s blocks"
        with torch.device("meta"):
            apply_peft(build_model(model_config), cfg.peft, verbose=False)
    if cfg.load_state:
        try:
            read_state_file(cfg.load_state, model_config, note=False)   # said once, when loaded
        except FileNotFoundError:
            raise ValueError(f"--load_state {cfg.load_state} does not exist") from None
        except ValueError as e:
            raise ValueError(f"--load_state: {e}") from None

    objective = objective_class(cfg.objective)(cfg)
    objective.check_data(model_config)                         # --data_file holds what the objective trains on
    if cfg.val_data:
        check_validation_data(cfg, model_config, objective)
    return model_config


def check_validation_data(cfg: TrainConfig, model_config, objective) -> None:
    """--val_data exists, fits the model's vocabulary and holds what the objective validates on."""
    try:
        data = BinIdx(cfg.val_data)
    except (FileNotFoundError, ValueError) as e:
        raise ValueError(f"--val_data: {e}") from None
    data.check_vocabulary(model_config.vocab_size, f"--val_data {cfg.val_data}")
    objective.check_validation_data(data)


def check_resume(cfg: TrainConfig, resume_from: Path) -> list[str]:
    """Everything a resume needs, checked before it writes anything: the trainer state's files, the
    settings it may not change, the step count, the adapter and the base it was trained on, metrics.csv.
    Returns the changes."""
    proj_dir = Path(cfg.proj_dir)
    check_trainer_state(resume_from, proj_dir)
    changed = compare(cfg, resume_from)
    if cfg.peft is not None:
        adapter = read_adapter(resume_from)
        if adapter.config != cfg.peft:
            raise ValueError(f"--resume {resume_from}: it was trained with {adapter.config}, this run asks for "
                             f"{cfg.peft}")
        check_same_base(cfg, resume_from, adapter)
    check_metrics(proj_dir / "metrics.csv", REQUIRED_COLUMNS)
    step = checkpoint_step(resume_from)
    if cfg.total_steps <= step:
        raise ValueError(f"--resume {resume_from} is at step {step}, and this run ends at step {cfg.total_steps}: "
                         f"nothing is left to train; give more steps (--steps, --epoch_count) to go on")
    return changed


def describe_base(settings: dict, proj_dir: Path) -> str:
    """The base a run's settings name: its --load_model, or the random init of its --model in proj_dir."""
    if settings.get("load_model"):
        return f"--load_model {settings['load_model']}"
    return f"the random init of --model {settings.get('model')} ({proj_dir / BASE})"


def check_same_base(cfg: TrainConfig, resume_from: Path, adapter) -> None:
    """A resumed adapter goes on training on the base file it was trained on, the one whose fingerprint it
    records (an adapter written before fingerprints were recorded cannot be checked). A random base this
    run would make anew is never that file: the earlier run's base.pth must be there."""
    if not adapter.base_fingerprint:
        return
    proj_dir = Path(cfg.proj_dir)
    settings, _ = saved_config(resume_from, proj_dir)
    base = base_path(cfg)
    if base.is_file():
        found = file_fingerprint(base)
        if found == adapter.base_fingerprint:
            return
        here = f"{describe_base(cfg.to_dict(), proj_dir)} (fingerprint {found})"
    else:
        here = f"a new random init of --model {cfg.model} (no {base} to reuse)"
    raise ValueError(f"--resume {resume_from}: its adapter was trained on {describe_base(settings or {}, proj_dir)} "
                     f"(fingerprint {adapter.base_fingerprint}), this run's base is {here}: resume with the base it "
                     f"was trained on")
