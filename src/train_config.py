"""Training configuration: one dataclass, filled from defaults < --config FILE < command-line flags.

Flag names are RWKV-LM's and RWKV-PEFT's where they exist. `validate` checks every value,
the files and the adapter's fit to the model's shapes before any model is loaded; a
problem is a one-line ValueError.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import dataclass_from_dict
from .peft.config import DEFAULT_TARGETS, METHODS, PeftConfig

STRATEGIES = ("deepspeed_stage_1", "deepspeed_stage_2", "deepspeed_stage_2_offload",
              "deepspeed_stage_3", "deepspeed_stage_3_offload")
PRECISIONS = ("bf16", "fp32", "tf32")
ACCELERATORS = ("auto", "cpu", "gpu")
LR_SCHEDULES = ("cos", "exp", "constant")
LOGGERS = ("csv", "tensorboard", "wandb")
PEFT_CHOICES = (*METHODS, "none")


@dataclass
class TrainConfig:
    # model
    load_model: str = ""              # base .pth; empty: a random init of --model, saved as proj_dir/base.pth
    model: str = ""                   # preset (tiny, 0.1b, ..., 14b) or config JSON, when there is no --load_model
    proj_dir: str = "out"
    # data
    data_file: str = ""               # binidx prefix (PREFIX.bin / PREFIX.idx)
    data_type: str = "binidx"         # binidx | pad | sft
    ctx_len: int = 512
    micro_bsz: int = 1
    num_workers: int = 0
    # length and saving (RWKV-LM's mini-epochs)
    epoch_steps: int = 1000           # optimizer steps per epoch
    epoch_count: int = 1
    epoch_save: int = 1               # save every N epochs (and always at the end)
    keep_trainer_states: int = 1      # keep optimizer states in the newest N checkpoints (adapters: all)
    # optimizer and schedule
    lr_init: float = 1e-4
    lr_final: float = 1e-5
    lr_schedule: str = "cos"          # cos | exp | constant (after warmup)
    warmup_steps: int = 10
    beta1: float = 0.9
    beta2: float = 0.99
    adam_eps: float = 1e-8
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    accumulate_grad_batches: int = 1
    l2wrap: bool = True               # RWKV-LM's small push of the largest logit towards 0
    # hardware
    accelerator: str = "auto"
    strategy: str = "deepspeed_stage_1"
    devices: int = 1
    num_nodes: int = 1
    precision: str = "bf16"
    grad_cp: bool = False
    wkv_backend: str = "auto"
    seed: int = 42
    # adapters
    peft: str = "bone"
    peft_r: int = 64
    lora_alpha: float | None = None
    lora_dropout: float = 0.0
    bat_index: str = "out"
    bat_materialize: bool = False     # the paper's Bat (W + ΔW through autograd): the benchmark's reference
    disha_r1: int | None = None
    pissa_niter: int = 4
    peft_targets: list[str] = field(default_factory=lambda: list(DEFAULT_TARGETS))
    train_parts: list[str] = field(default_factory=list)
    # logging and resuming
    log: str = "csv"
    wandb_project: str = "rwkv6-peft"
    progress_bar: bool = True
    resume: str = ""                  # "" start fresh; "latest"; "auto" (latest if any); or a checkpoint directory

    @property
    def resolved_accelerator(self) -> str:
        """"cpu" or "gpu": --accelerator, with "auto" meaning a GPU when one is visible."""
        if self.accelerator != "auto":
            return self.accelerator
        import torch
        return "gpu" if torch.cuda.is_available() else "cpu"

    @property
    def total_steps(self) -> int:
        return self.epoch_steps * self.epoch_count

    @property
    def save_every(self) -> int:
        return self.epoch_steps * self.epoch_save

    def peft_config(self) -> PeftConfig | None:
        if self.peft == "none":
            return None
        return PeftConfig(method=self.peft, r=self.peft_r, alpha=self.lora_alpha, dropout=self.lora_dropout,
                          bat_index=self.bat_index, bat_materialize=self.bat_materialize, disha_r1=self.disha_r1,
                          pissa_niter=self.pissa_niter, targets=tuple(self.peft_targets),
                          train_parts=tuple(self.train_parts), seed=self.seed)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ------------------------------------------------------------------ reading flags and files

def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected 0/1 or true/false, got {value!r}")


def _list(value: Any) -> list[str]:
    """["time", "ln"], '["time","ln"]' (RWKV-PEFT), "time,ln" or "time ln"."""
    if isinstance(value, (list, tuple)):
        items = []
        for v in value:
            items.extend(_list(v))
        return items
    text = str(value).strip()
    if text.startswith("["):
        return [str(v) for v in json.loads(text)]
    return [v for v in text.replace(",", " ").split() if v]


def _optional(kind):
    def convert(value):
        return None if value is None or str(value).lower() in ("", "none", "null") else kind(value)
    return convert


CONVERTERS = {"bool": _bool, "int": int, "float": float, "str": str, "list[str]": _list,
              "float | None": _optional(float), "int | None": _optional(int)}


def convert_value(name: str, value: Any) -> Any:
    kind = {f.name: f.type for f in dataclasses.fields(TrainConfig)}[name]
    try:
        return CONVERTERS[kind](value)
    except (ValueError, TypeError, json.JSONDecodeError) as e:
        raise ValueError(f"--{name} {value!r}: {e}") from None


def read_config_file(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--config {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml
            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as e:
        raise ValueError(f"--config {path} cannot be parsed: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"--config {path} must hold a mapping of flag names to values")
    values = {}
    for key, value in data.items():
        name = str(key).lstrip("-").replace("-", "_")
        name = ALIASES.get(name, name)
        if name not in KNOWN_KEYS:
            close = difflib.get_close_matches(name, sorted(KNOWN_KEYS), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ValueError(f"--config {path}: unknown key {key!r}{hint}")
        values[name] = value
    return values


ALIASES = {"rank": "peft_r", "data": "data_file", "lr": "lr_init"}     # the short names of scripts/train_*.sh
KNOWN_KEYS = {f.name for f in dataclasses.fields(TrainConfig)} | {"steps", "gpus"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="train.py", description="Fine-tune RWKV6 with Bone, Bat, DiSHA, LoRA or PiSSA "
                                "under Lightning + DeepSpeed.", argument_default=argparse.SUPPRESS,
                                allow_abbrev=False)
    p.add_argument("--config", action="append", metavar="FILE",
                   help="JSON or YAML file with flag names as keys; several are read in order; flags given here win")
    for f in dataclasses.fields(TrainConfig):
        nargs = "+" if f.type == "list[str]" else None
        p.add_argument(f"--{f.name}", nargs=nargs, metavar=f.name.upper())
    # the short names of scripts/train_*.sh
    p.add_argument("--rank", dest="peft_r", help="= --peft_r")
    p.add_argument("--data", dest="data_file", help="= --data_file")
    p.add_argument("--lr", dest="lr_init", help="= --lr_init (lr_final defaults to lr / 10)")
    p.add_argument("--steps", help="total optimizer steps (= epoch_steps * epoch_count)")
    p.add_argument("--gpus", help="number of GPUs per node (0: train on the CPU)")
    return p


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """Defaults < each --config FILE in order < the other flags on the command line."""
    given = vars(build_parser().parse_args(argv))
    files = given.pop("config", [])
    values: dict[str, Any] = {}
    for path in files:
        values.update(read_config_file(path))
    return config_from_values(values, given)


def config_from_values(file_values: dict[str, Any], flags: dict[str, Any] | None = None) -> TrainConfig:
    """file_values: from --config files (or a dict); flags: from the command line, which win.
    `steps` (= epoch_steps x epoch_count) and `gpus` (= devices, 0 = the CPU) are short forms;
    lr_final defaults to lr_init / 10 unless it is given where lr_init is. A warmup not given on the
    command line shrinks to a tenth of a run too short for it; on the CPU, precision is fp32 unless
    --precision is given on the command line."""
    flags = dict(flags or {})
    values = {**file_values, **flags}
    steps = values.pop("steps", None)
    gpus = values.pop("gpus", None)
    if gpus is not None:
        gpus = convert_value("devices", gpus)
        if gpus < 0:
            raise ValueError(f"--gpus must be 0 (the CPU) or a number of GPUs, got {gpus}")
        if gpus == 0:
            values["accelerator"] = "cpu"
        else:
            values["accelerator"] = "gpu"
            values["devices"] = gpus
    lr_from = flags if "lr_init" in flags else file_values
    if "lr_init" in lr_from and "lr_final" not in lr_from:
        values["lr_final"] = convert_value("lr_init", lr_from["lr_init"]) / 10
    model = values.get("model", "")
    if str(model).endswith(".pth"):                         # --model MODEL.pth means --load_model
        values["load_model"] = values.pop("model")
    if steps is not None:
        steps = convert_value("epoch_steps", steps)
        if steps <= 0:
            raise ValueError(f"--steps must be positive, got {steps}")
        steps_from = flags if "steps" in flags else file_values
        if "epoch_steps" in steps_from:
            count = convert_value("epoch_count", values.get("epoch_count", 1))
            if convert_value("epoch_steps", steps_from["epoch_steps"]) * count != steps:
                raise ValueError(f"--steps {steps} disagrees with --epoch_steps {steps_from['epoch_steps']} x "
                                 f"--epoch_count {count}")
        elif "epoch_steps" not in flags:                    # --steps on the command line beats a file's epoch_steps
            count = convert_value("epoch_count", values.get("epoch_count", 1))
            if count <= 0:
                raise ValueError(f"--epoch_count must be positive, got {count}")
            values["epoch_steps"] = math.ceil(steps / count)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    converted = {k: (convert_value(k, v) if k in known else v) for k, v in values.items()}
    cfg = dataclass_from_dict(TrainConfig, converted, source="training configuration")
    if "warmup_steps" not in flags and cfg.warmup_steps >= cfg.total_steps > 1:
        cfg.warmup_steps = cfg.total_steps // 10          # a default (or a file's) warmup that a short run cannot fit
    if "precision" not in flags and cfg.precision == "bf16" and cfg.resolved_accelerator == "cpu":
        cfg.precision = "fp32"                             # bf16 matmuls are slow on most CPUs; ask for it to get it
    return cfg


# ------------------------------------------------------------------ validation

def _check_choice(name: str, value: str, choices) -> None:
    if value not in choices:
        raise ValueError(f"--{name} {value!r} is not one of {', '.join(choices)}")


def validate(cfg: TrainConfig):
    """Check everything that can be checked before loading a model. Returns the model's
    RWKV6Config (read from the checkpoint's shapes, memory-mapped, or from the preset)."""
    import torch

    from .config import RWKV6Config, resolve_config
    from .data import BinIdx, TokenDataset
    from .model import RWKV6, read_checkpoint
    from .peft import apply_peft

    _check_choice("peft", cfg.peft, PEFT_CHOICES)
    _check_choice("strategy", cfg.strategy, STRATEGIES)
    _check_choice("precision", cfg.precision, PRECISIONS)
    _check_choice("accelerator", cfg.accelerator, ACCELERATORS)
    _check_choice("lr_schedule", cfg.lr_schedule, LR_SCHEDULES)
    _check_choice("log", cfg.log, LOGGERS)
    _check_choice("data_type", cfg.data_type, ("binidx", "pad", "sft"))
    for name in ("ctx_len", "micro_bsz", "epoch_steps", "epoch_count", "epoch_save", "accumulate_grad_batches",
                 "devices", "num_nodes", "peft_r", "pissa_niter"):
        if getattr(cfg, name) < (0 if name == "pissa_niter" else 1):
            raise ValueError(f"--{name} must be positive, got {getattr(cfg, name)}")
    for name in ("warmup_steps", "num_workers", "keep_trainer_states", "weight_decay", "grad_clip"):
        if getattr(cfg, name) < 0:
            raise ValueError(f"--{name} must not be negative, got {getattr(cfg, name)}")
    if not (cfg.lr_init > 0 and cfg.lr_final > 0):
        raise ValueError(f"--lr_init and --lr_final must be positive, got {cfg.lr_init} and {cfg.lr_final}")
    if not (0 <= cfg.beta1 < 1 and 0 <= cfg.beta2 < 1):
        raise ValueError(f"--beta1 and --beta2 must be in [0, 1), got {cfg.beta1} and {cfg.beta2}")
    if cfg.adam_eps <= 0:
        raise ValueError(f"--adam_eps must be positive, got {cfg.adam_eps}")
    if cfg.warmup_steps >= cfg.total_steps and cfg.total_steps > 1:
        raise ValueError(f"--warmup_steps {cfg.warmup_steps} leaves no steps of the {cfg.total_steps} to train after the "
                         f"warmup; give a smaller --warmup_steps")
    if cfg.log in ("wandb", "tensorboard"):
        package = "wandb" if cfg.log == "wandb" else "tensorboard"
        import importlib.util
        if importlib.util.find_spec(package) is None and not (package == "tensorboard"
                                                              and importlib.util.find_spec("tensorboardX")):
            raise ValueError(f"--log {cfg.log} needs the {package} package (pip install {package})")

    accelerator = cfg.resolved_accelerator
    if accelerator == "gpu":
        available = torch.cuda.device_count()
        if available == 0:
            raise ValueError("--accelerator gpu (or --gpus N): no CUDA device is visible on this machine")
        if cfg.devices > available:
            raise ValueError(f"--devices {cfg.devices}: only {available} CUDA device(s) are visible")
    if cfg.strategy.endswith("offload") and accelerator == "cpu":
        raise ValueError(f"--strategy {cfg.strategy} offloads to the CPU from a GPU; on a CPU use deepspeed_stage_1/2/3")

    # the model's shapes, without loading it
    if cfg.load_model:
        if not Path(cfg.load_model).is_file():
            raise ValueError(f"--load_model {cfg.load_model} does not exist")
        model_config = RWKV6Config.from_state_dict(read_checkpoint(cfg.load_model), source=cfg.load_model)
        if cfg.model:                                         # --model 3b --load_model rwkv6-3b.pth: must agree
            named, found = resolve_config(cfg.model).shape_signature(), model_config.shape_signature()
            wrong = {k: (named[k], found[k]) for k in named if named[k] != found[k]}
            if wrong:
                detail = ", ".join(f"{k} {a} vs {b}" for k, (a, b) in wrong.items())
                raise ValueError(f"--model {cfg.model} does not describe --load_model {cfg.load_model} "
                                 f"(--model vs checkpoint: {detail})")
    elif cfg.model:
        model_config = resolve_config(cfg.model)
    else:
        raise ValueError("give --load_model BASE.pth (to fine-tune) or --model PRESET|CONFIG.json (random init)")

    peft = cfg.peft_config()       # PeftConfig validates its own fields
    if peft is not None:
        with torch.device("meta"):
            apply_peft(RWKV6(model_config), peft, verbose=False)

    if not cfg.data_file:
        raise ValueError("--data_file PREFIX is required (make one with scripts/make_data.sh)")
    data = BinIdx(cfg.data_file)
    if data.dtype.itemsize == 2 and model_config.vocab_size > 65536:
        raise ValueError(f"{cfg.data_file} stores uint16 tokens but the model has {model_config.vocab_size}")
    TokenDataset(data, cfg.data_type, cfg.ctx_len)                # enough data for one sample?
    return model_config
