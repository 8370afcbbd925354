"""A training run (train.py): preflight, the model with its adapters, Lightning + DeepSpeed, exits.

    python train.py --load_model rwkv6-3b.pth --data_file data/mydata --peft bone --peft_r 64 ...

`run(cfg)` checks the configuration's values (config.validate), then everything that needs
a file, the model's shapes or the data (`preflight`), before any weight is loaded. The run
directory's layout is in run_dir.py; the per-step work in module.py; what follows each
optimizer step in callbacks.py.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException

from ..data import BinIdx, TokenDataset
from ..model import (RWKV6Config, RWKV7Config, config_from_checkpoint, load_model, read_checkpoint,
                     read_state_file, resolve_config, save_rwkv6)
from ..model import build_model as network_of
from ..model.init import init_model
from ..peft.apply import resolve_targets
from ..peft import apply_peft, load_adapter, read_adapter
from ..peft.state import load_time_state
from ..utils.atomic import atomic_write_text, writing
from ..utils.files import file_fingerprint, same_file
from ..utils.cli import run_command
from .callbacks import REQUIRED_COLUMNS, ProgressBar, StepEnd, TrainingLog
from .checkpointing import Checkpointing
from .config import TrainConfig, describe_derived, parse_args, validate
from .loss import NonFiniteLoss, NothingToLearn
from .module import RWKVTrainingModule
from .resume import abandon_newer, check_metrics, check_trainer_state, compare
from .run_dir import RUN_CONFIG, TRAINER_STATE, checkpoint_step, checkpoints, find_resume_checkpoint, resumable
from .signals import StopNow, StopRequest
from .strategy import make_strategy
from .validation import Validation

OOM_ADVICE = ("CUDA ran out of memory. Try, in this order: --grad_cp 1 (recompute activations), a smaller "
              "--micro_bsz (with --accumulate_grad_batches to keep the batch), a shorter --ctx_len, "
              "--strategy deepspeed_stage_2_offload or deepspeed_stage_3_offload (optimizer / parameters in CPU RAM).")


def preflight(cfg: TrainConfig) -> RWKV6Config | RWKV7Config:
    """What can be checked before loading a model, beyond the values themselves: the device, the
    logger's package, the base model's shapes and family (memory-mapped, nothing loaded), the
    adapters' fit to them (on the meta device) and the data. Returns the model's config (RWKV6Config
    or RWKV7Config). The adapters' default targets become the family's (RWKV-7 has six linears)."""
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
            named.setdefault("family", "x060"), found.setdefault("family", "x060")
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

    if cfg.peft is not None:
        resolved = resolve_targets(cfg.peft, model_config.family)
        if resolved != cfg.peft:
            cfg.peft = resolved
            cfg.derived["peft_targets"] = "the model's linear layers (RWKV-7 has six)"
        with torch.device("meta"):
            apply_peft(network_of(model_config), cfg.peft, verbose=False)
    if cfg.load_state:
        try:
            read_state_file(cfg.load_state, model_config)
        except FileNotFoundError:
            raise ValueError(f"--load_state {cfg.load_state} does not exist") from None
        except ValueError as e:
            raise ValueError(f"--load_state: {e}") from None

    if not cfg.data_file:
        raise ValueError("--data_file PREFIX is required (make one with scripts/make_data.sh)")
    data = BinIdx(cfg.data_file)
    data.check_vocabulary(model_config.vocab_size, cfg.data_file)
    TokenDataset(data, cfg.data_type, cfg.ctx_len)                # enough data for one sample?
    if cfg.val_data:
        check_validation_data(cfg, model_config)
    return model_config


def check_validation_data(cfg: TrainConfig, model_config) -> None:
    from ..infer.evaluate import response_tokens, windows
    try:
        data = BinIdx(cfg.val_data)
    except (FileNotFoundError, ValueError) as e:
        raise ValueError(f"--val_data: {e}") from None
    spans = windows(data.num_tokens, cfg.ctx_len, cfg.val_windows or None)
    if not spans:
        raise ValueError(f"--val_data {cfg.val_data} holds {data.num_tokens} tokens: too few to predict one")
    data.check_vocabulary(model_config.vocab_size, f"--val_data {cfg.val_data}")
    if cfg.data_type == "sft" and not response_tokens(data)[1:spans[-1][1]].any():
        raise ValueError(f"--val_data {cfg.val_data}: no response token in its windows to validate on (sft data)")


def global_rank_from_env(devices_per_node: int) -> int:
    """Before Lightning starts, the launched processes know their rank only from the environment."""
    node, local = int(os.environ.get("NODE_RANK", 0)), int(os.environ.get("LOCAL_RANK", 0))
    return node * devices_per_node + local


BASE, BASE_RECORD = "base.pth", "base.json"        # a run's random initial model, and how it was made


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


def base_path(cfg: TrainConfig) -> Path:
    """The base .pth of the run: --load_model, or the random init saved in proj_dir."""
    return Path(cfg.load_model) if cfg.load_model else Path(cfg.proj_dir) / BASE


def build_model(cfg: TrainConfig, model_config, resume_from: Path | None, is_rank_zero: bool):
    """The base model (loaded, or a random init saved as proj_dir/base.pth) with its adapters."""
    dtype = torch.bfloat16 if cfg.precision == "bf16" else torch.float32
    runtime = dict(grad_cp=cfg.grad_cp, wkv_backend=cfg.wkv_backend)
    if cfg.load_model:
        model = load_model(cfg.load_model, dtype=dtype, **runtime)
    else:
        base = Path(cfg.proj_dir) / BASE
        if random_base_differences(Path(cfg.proj_dir), model_config, cfg.seed, bool(cfg.resume)) == []:
            model = load_model(base, dtype=dtype, config=model_config.replace(**runtime))     # this run's own
        else:
            model = init_model(model_config.replace(**runtime), seed=cfg.seed, dtype=dtype)
            if is_rank_zero:
                save_rwkv6(model, base, dtype=dtype)
                record = {"model": cfg.model, "shapes": model_config.shape_signature(), "seed": cfg.seed}
                atomic_write_text(base.with_name(BASE_RECORD), json.dumps(record, indent=2) + "\n")
                print(f"random initial model saved as {base} (merge.py --base {base})", flush=True)
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


RUN_FILES = (RUN_CONFIG, "metrics.csv", "loss.png")       # what a run writes beside its checkpoints


def check_run_directory(cfg: TrainConfig, resume_from: Path | None) -> None:
    """Before anything is written: a fresh run replaces an earlier run's files only with --overwrite (its
    checkpoints never: --resume continues them), and no run writes over one of its own --config files."""
    proj_dir = Path(cfg.proj_dir)
    for source in cfg.sources:
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
    if earlier and not cfg.overwrite:
        raise ValueError(f"{proj_dir} holds files of an earlier run ({', '.join(earlier)}) and no checkpoint: pass "
                         f"--overwrite to start a new run there, or choose another --proj_dir")


def check_resume(cfg: TrainConfig, resume_from: Path) -> list[str]:
    """Everything a resume needs, checked before it writes anything: the trainer state's files, the
    settings it may not change, the step count, the adapter and metrics.csv. Returns the changes."""
    proj_dir = Path(cfg.proj_dir)
    check_trainer_state(resume_from, proj_dir)
    changed = compare(cfg, resume_from)
    if cfg.peft is not None:
        adapter = read_adapter(resume_from)
        if adapter.config != cfg.peft:
            raise ValueError(f"--resume {resume_from}: it was trained with {adapter.config}, this run asks for "
                             f"{cfg.peft}")
        base = base_path(cfg)
        if adapter.base_fingerprint and base.is_file() and file_fingerprint(base) != adapter.base_fingerprint:
            raise ValueError(f"--resume {resume_from}: it was trained on another base file than {base} (the "
                             f"shapes agree, the contents differ): resume with the base it was trained on")
    check_metrics(proj_dir / "metrics.csv", REQUIRED_COLUMNS)
    step = checkpoint_step(resume_from)
    if cfg.total_steps <= step:
        raise ValueError(f"--resume {resume_from} is at step {step}, and this run ends at step {cfg.total_steps}: "
                         f"nothing is left to train; give more steps (--steps, --epoch_count) to go on")
    return changed


class RunRecord(L.Callback):
    """When training starts (the checkpoint, if any, restored), and only then: the newer checkpoints of a
    resumed run are moved aside, the changed settings printed, train_config.json written."""

    def __init__(self, cfg: TrainConfig, resume_step: int, changed: list[str]):
        self.cfg, self.resume_step, self.changed = cfg, resume_step, changed
        self.started = False

    def on_train_start(self, trainer, pl_module) -> None:
        self.started = True
        if not trainer.is_global_zero:
            return
        proj_dir = Path(self.cfg.proj_dir)
        if self.cfg.resume:
            abandoned = abandon_newer(proj_dir, self.resume_step)
            if abandoned:
                print(f"resuming from step {self.resume_step}: the newer checkpoints were moved to {abandoned}",
                      flush=True)
            if self.changed:
                print(f"resuming with changed settings: {', '.join(self.changed)}", flush=True)
        write_run_config(self.cfg)


def run(cfg: TrainConfig, extra_callbacks: tuple[L.Callback, ...] = ()) -> dict:
    """Train as cfg says; extra_callbacks (e.g. the benchmark's probe) join the run's own. Every check
    comes before the first write."""
    start = time.time()
    validate(cfg)
    model_config = preflight(cfg)
    is_rank_zero = global_rank_from_env(cfg.devices) == 0
    proj_dir = Path(cfg.proj_dir)
    resume_from = find_resume_checkpoint(proj_dir, cfg.resume)
    check_run_directory(cfg, resume_from)
    resume_step = checkpoint_step(resume_from) if resume_from else 0
    changed = check_resume(cfg, resume_from) if resume_from is not None else []

    with writing(proj_dir):
        proj_dir.mkdir(parents=True, exist_ok=True)
    if is_rank_zero and cfg.derived:
        print(f"derived: {describe_derived(cfg)}", flush=True)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    if cfg.precision == "tf32":
        torch.set_float32_matmul_precision("high")
    accelerator = cfg.resolved_accelerator

    model = build_model(cfg, model_config, resume_from, is_rank_zero)
    stop = StopRequest()
    base = base_path(cfg)
    module = RWKVTrainingModule(model, cfg, BinIdx(cfg.data_file), stop,
                                base_fingerprint=file_fingerprint(base) if base.is_file() else None)
    world = cfg.devices * cfg.num_nodes
    tokens_per_step = cfg.micro_bsz * cfg.ctx_len * cfg.accumulate_grad_batches * world
    record = RunRecord(cfg, resume_step, changed)
    validation = None
    if cfg.val_data:
        validation = Validation(BinIdx(cfg.val_data), cfg.ctx_len, "sft" if cfg.data_type == "sft" else "binidx",
                                cfg.val_every, cfg.total_steps, cfg.val_windows or None,
                                all_ranks=cfg.strategy.startswith("deepspeed_stage_3"))
    ending = StepEnd(TrainingLog(proj_dir, tokens_per_step, resume_step=resume_step),
                     Checkpointing(proj_dir, cfg.save_every, cfg.total_steps, cfg.keep_trainer_states), validation)
    callbacks = [record, ending, *([ProgressBar()] if cfg.progress_bar else []), *extra_callbacks]
    trainer = L.Trainer(
        accelerator=accelerator, devices=cfg.devices, num_nodes=cfg.num_nodes,
        strategy=make_strategy(cfg.strategy, accelerator, cfg.micro_bsz),
        precision="bf16-true" if cfg.precision == "bf16" else "32-true",
        max_steps=cfg.total_steps, max_epochs=-1, accumulate_grad_batches=cfg.accumulate_grad_batches,
        gradient_clip_val=cfg.grad_clip or None, use_distributed_sampler=False, logger=make_logger(cfg, proj_dir),
        enable_checkpointing=False, callbacks=callbacks, enable_progress_bar=cfg.progress_bar,
        enable_model_summary=False, log_every_n_steps=1, num_sanity_val_steps=0)
    if resume_from is not None and is_rank_zero:
        print(f"resuming from {resume_from} (step {resume_step})", flush=True)
    stop.install()
    try:
        with warnings.catch_warnings():
            # Lightning cannot see that our samples depend on their number alone (module.dataset), so a
            # resumed run continues exactly; its warning that it might not would mislead
            warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch")
            trainer.fit(module, ckpt_path=str(resume_from / TRAINER_STATE) if resume_from else None)
    except SIGTERMException:             # Lightning's own SIGTERM exit, after our checkpoint was saved
        ending.training_log.plot(trainer.is_global_zero)
    except Exception as e:
        if resume_from is None or record.started:
            raise
        first = (str(e).splitlines() or [""])[0]
        raise ValueError(f"--resume {resume_from}: its {TRAINER_STATE}/ cannot be restored ({type(e).__name__}: "
                         f"{first}); it is damaged or incomplete: resume from an earlier checkpoint") from None
    finally:
        stop.uninstall()
    return {"steps": trainer.global_step, "seconds": time.time() - start, "proj_dir": proj_dir,
            "stopped_early": stop.requested}


def last_good(proj_dir: Path) -> str:
    """How to go on after a run stopped: from its newest checkpoint, or from the start."""
    found = resumable(proj_dir)
    if found:
        return (f"The newest checkpoint, {found[-1][1]}, holds weights whose loss is finite: continue with "
                f"--resume latest and")
    return "No checkpoint was saved: start again (without --resume, with --overwrite) with"


def main(argv: list[str] | None = None) -> int:
    def body() -> int:
        cfg = parse_args(argv)
        try:
            result = run(cfg)
        except NonFiniteLoss as e:
            print(f"train.py: stopped: {e}. {last_good(Path(cfg.proj_dir))} a lower --lr_init, a longer "
                  f"--warmup_steps or --grad_clip 1.", file=sys.stderr)
            return 3
        except NothingToLearn as e:
            print(f"train.py: stopped: {e}.", file=sys.stderr)
            return 3
        except torch.OutOfMemoryError:
            print(f"train.py: {OOM_ADVICE}", file=sys.stderr)
            return 4
        except StopNow:
            print(f"train.py: stopped at once (a second Ctrl-C); checkpoints are written whole or not at all: the "
                  f"newest in {cfg.proj_dir} is the one to --resume", file=sys.stderr)
            return 2
        if global_rank_from_env(cfg.devices) == 0:
            done = "stopped early at" if result["stopped_early"] else "finished"
            print(f"{done} step {result['steps']} in {result['seconds']:.0f}s; checkpoints, metrics.csv and loss.png "
                  f"in {result['proj_dir']}")
        return 0

    # a second Ctrl-C stops at once, without a checkpoint
    return run_command("train.py", body, interrupted="checkpoints are written whole or not at all: the newest is the "
                                                     "one to --resume")
