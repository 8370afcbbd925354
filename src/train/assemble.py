"""A checked run put together and trained: the model with its adapters (loaded, or a random init kept
as proj_dir/base.pth once training starts), the Lightning module, the callbacks, DeepSpeed's strategy
and the Lightning Trainer; `fit` runs it and returns what happened. The checks before it are
preflight.py's; nothing is written in proj_dir before training starts (RunRecord), after the last of
them, a resume's restored trainer state."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import lightning as L
import torch

from ..data import BinIdx
from ..model import load_model
from ..model.init import init_model, init_state_dict
from ..peft import apply_peft, load_adapter, read_adapter
from ..peft.state import load_time_state
from ..quant import quantize_model
from ..utils.atomic import atomic_write_text, writing
from ..utils.files import file_fingerprint
from .callbacks import ProgressBar, StepEnd, TrainingLog
from .checkpointing import Checkpointing
from .config import TrainConfig, describe_derived
from .module import RWKVTrainingModule
from .objective import Objective, training_data
from .preflight import CheckedRun
from .random_base import BASE, base_path, is_this_runs_base, save_random_base
from .resume import abandon_newer
from .run_dir import RUN_CONFIG, TRAINER_STATE
from .signals import StopRequest, keep_lightning_off_sigterm
from .strategy import make_strategy
from .validation import Validation


def global_rank_from_env(devices_per_node: int) -> int:
    """Before Lightning starts, the launched processes know their rank only from the environment."""
    node, local = int(os.environ.get("NODE_RANK", 0)), int(os.environ.get("LOCAL_RANK", 0))
    return node * devices_per_node + local


def makes_random_base(cfg: TrainConfig, model_config) -> bool:
    """The run trains from a new random init of --model, written as proj_dir/base.pth once training starts."""
    return not cfg.load_model and not is_this_runs_base(cfg, model_config)


def build_model(cfg: TrainConfig, model_config, resume_from: Path | None, is_rank_zero: bool):
    """The base model (loaded, or a random init that RunRecord saves as proj_dir/base.pth) with its adapters."""
    dtype = torch.bfloat16 if cfg.precision == "bf16" else torch.float32
    runtime = dict(grad_cp=cfg.grad_cp, wkv_backend=cfg.wkv_backend)
    quant = cfg.quant_scheme                  # quantised while loading, on the device that trains
    device = "cuda" if quant is not None and cfg.resolved_accelerator == "gpu" else "cpu"
    if cfg.load_model:
        model = load_model(cfg.load_model, dtype=dtype, quant=quant, device=device, **runtime)
    elif not makes_random_base(cfg, model_config):
        model = load_model(Path(cfg.proj_dir) / BASE, dtype=dtype, config=model_config.replace(**runtime),
                           quant=quant, device=device)
    else:
        model = init_model(model_config.replace(**runtime), seed=cfg.seed, dtype=dtype)
        if quant is not None:
            quantize_model(model.to(device), quant)
    model.train()
    if cfg.peft is None:
        model.requires_grad_(True)
        return model
    if resume_from is not None:
        load_adapter(model, read_adapter(resume_from))           # its config was checked by check_resume
    else:
        apply_peft(model, cfg.peft, verbose=is_rank_zero)
        if cfg.load_state:
            load_time_state(model, cfg.load_state)
    return model


def write_run_config(cfg: TrainConfig) -> None:
    atomic_write_text(Path(cfg.proj_dir) / RUN_CONFIG, json.dumps(cfg.to_dict(), indent=2) + "\n")


def make_logger(cfg: TrainConfig, proj_dir: Path):
    if cfg.log == "tensorboard":
        return L.pytorch.loggers.TensorBoardLogger(str(proj_dir), name="tensorboard")
    if cfg.log == "wandb":
        return L.pytorch.loggers.WandbLogger(project=cfg.wandb_project, save_dir=str(proj_dir))
    return False


class RunRecord(L.Callback):
    """When training starts (the checkpoint, if any, restored: the last of a resume's checks), and only
    then: a new random base written as proj_dir/base.pth (`random_base`: its config), the newer
    checkpoints of a resumed run moved aside, the changed settings printed, train_config.json written."""

    def __init__(self, cfg: TrainConfig, resume_step: int, changed: list[str], random_base=None):
        self.cfg, self.resume_step, self.changed = cfg, resume_step, changed
        self.random_base = random_base
        self.started = False

    def on_train_start(self, trainer, pl_module) -> None:
        self.started = True
        if not trainer.is_global_zero:
            return
        if self.random_base is not None:
            # the same tensors as the model's own init (seeded, on the CPU); the model itself may already
            # hold adapters merged into its weights, or be partitioned by DeepSpeed
            dtype = torch.bfloat16 if self.cfg.precision == "bf16" else torch.float32
            save_random_base(init_state_dict(self.random_base, seed=self.cfg.seed, dtype=dtype), self.cfg,
                             self.random_base, dtype)
            pl_module.base_fingerprint = file_fingerprint(base_path(self.cfg))
        proj_dir = Path(self.cfg.proj_dir)
        if self.cfg.resume:
            abandoned = abandon_newer(proj_dir, self.resume_step)
            if abandoned:
                print(f"resuming from step {self.resume_step}: the newer checkpoints were moved to {abandoned}",
                      flush=True)
            if self.changed:
                print(f"resuming with changed settings: {', '.join(self.changed)}", flush=True)
        write_run_config(self.cfg)


def step_end(cfg: TrainConfig, resume_step: int, objective: Objective) -> StepEnd:
    """The run's StepEnd with its parts: the metrics log (with the objective's metrics), the checkpoints and,
    with --val_data, validation."""
    world = cfg.devices * cfg.num_nodes
    tokens_per_step = cfg.micro_bsz * cfg.ctx_len * cfg.accumulate_grad_batches * world * objective.sequences_per_sample()
    validation = None
    if cfg.val_data:
        validation = Validation(BinIdx(cfg.val_data), cfg.val_every, cfg.total_steps, cfg.val_windows or None,
                                all_ranks=cfg.strategy.startswith("deepspeed_stage_3"))
    return StepEnd(TrainingLog(cfg.proj_dir, tokens_per_step, resume_step=resume_step, metrics=objective.metrics),
                   Checkpointing(cfg.proj_dir, cfg.save_every, cfg.total_steps, cfg.keep_trainer_states),
                   validation)


def fit(cfg: TrainConfig, checked: CheckedRun, extra_callbacks: tuple[L.Callback, ...] = ()) -> dict:
    """Train the run that check_run passed; extra_callbacks join the run's own, after them. Returns the
    steps trained, proj_dir and whether it stopped early (on request, at the end of a step)."""
    resume_from, resume_step = checked.resume_from, checked.resume_step
    is_rank_zero = global_rank_from_env(cfg.devices) == 0
    proj_dir = Path(cfg.proj_dir)
    with writing(proj_dir):
        proj_dir.mkdir(parents=True, exist_ok=True)
    if is_rank_zero and cfg.derived:
        print(f"derived: {describe_derived(cfg)}", flush=True)
    if is_rank_zero:
        from ..plan.from_train import announce    # here: src.plan reads TrainConfig's choices from this package
        for line in announce(cfg, checked.model_config):    # before any weight is loaded
            print(line, flush=True)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    if cfg.precision == "tf32":
        torch.set_float32_matmul_precision("high")
    accelerator = cfg.resolved_accelerator

    random_base = checked.model_config if makes_random_base(cfg, checked.model_config) else None
    model = build_model(cfg, checked.model_config, resume_from, is_rank_zero)
    stop = StopRequest()
    base = base_path(cfg)
    module = RWKVTrainingModule(model, cfg, training_data(cfg), stop,     # a new random base's: RunRecord's
                                base_fingerprint=file_fingerprint(base) if random_base is None else None)
    record = RunRecord(cfg, resume_step, checked.changed, random_base)
    ending = step_end(cfg, resume_step, module.objective)
    callbacks = [record, ending, *([ProgressBar()] if cfg.progress_bar else []), *extra_callbacks]
    trainer = L.Trainer(
        accelerator=accelerator, devices=cfg.devices, num_nodes=cfg.num_nodes,
        strategy=make_strategy(cfg.strategy, accelerator, cfg.micro_bsz),
        precision="bf16-true" if cfg.precision == "bf16" else "32-true",
        max_steps=cfg.total_steps, max_epochs=-1, accumulate_grad_batches=cfg.accumulate_grad_batches,
        gradient_clip_val=cfg.grad_clip or None, use_distributed_sampler=False, logger=make_logger(cfg, proj_dir),
        enable_checkpointing=False, callbacks=callbacks, enable_progress_bar=cfg.progress_bar,
        enable_model_summary=False, log_every_n_steps=1, num_sanity_val_steps=0)
    keep_lightning_off_sigterm(trainer, stop)
    if resume_from is not None and is_rank_zero:
        print(f"resuming from {resume_from} (step {resume_step})", flush=True)
    stop.install()
    try:
        with warnings.catch_warnings():
            # Lightning cannot see that our samples depend on their number alone (module.dataset), so a
            # resumed run continues exactly; its warning that it might not would mislead
            warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch")
            trainer.fit(module, ckpt_path=str(resume_from / TRAINER_STATE) if resume_from else None)
    except Exception as e:
        if resume_from is None or record.started:
            raise
        first = (str(e).splitlines() or [""])[0]
        raise ValueError(f"--resume {resume_from}: its {TRAINER_STATE}/ cannot be restored ({type(e).__name__}: "
                         f"{first}); it is damaged or incomplete: resume from an earlier checkpoint") from None
    finally:
        stop.uninstall()
    return {"steps": trainer.global_step, "proj_dir": proj_dir, "stopped_early": ending.stopped_at is not None}
