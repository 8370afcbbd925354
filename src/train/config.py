"""Training configuration: one dataclass, filled from defaults < --config FILE(s) < command-line flags.

Flag names are RWKV-LM's and RWKV-PEFT's where they exist. Every field carries its help
text, default and choices (`python train.py --help` prints them); the adapter flags are
PeftConfig's (src/peft/config.py), held here as `TrainConfig.peft`.

Three values are derived when not given, by one rule wherever the others come from
(flags, files, presets), printed at the start of a run and recorded in train_config.json:
    lr_final       lr_init / 10
    warmup_steps   10, or a tenth of the run when that is shorter
    precision      bf16 on a GPU, fp32 on a CPU (bf16 matmuls are slow on most CPUs)
`validate` checks the values alone; what needs the model or the data is checked by the
run's preflight (src/train/trainer.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.dataset import DATA_TYPES
from ..peft.config import PeftConfig
from ..peft.registry import PEFT_METHODS, STATE_METHOD, adapter_class
from ..wkv6 import BACKENDS as WKV_BACKENDS
from ..utils.options import add_flags, convert, dataclass_from_dict, flag_name, format_value, option

STRATEGIES = ("deepspeed_stage_1", "deepspeed_stage_2", "deepspeed_stage_2_offload",
              "deepspeed_stage_3", "deepspeed_stage_3_offload")
PRECISIONS = ("bf16", "fp32", "tf32")
ACCELERATORS = ("auto", "cpu", "gpu")
LR_SCHEDULES = ("cos", "exp", "constant")
LOGGERS = ("csv", "tensorboard", "wandb")
PEFT_CHOICES = (*PEFT_METHODS, "none")
DEFAULT_PEFT = PeftConfig(method="bone", r=64)
DEFAULT_WARMUP = 10
FLOAT32_MAX = 3.4028234663852886e38

# PeftConfig's fields that every adapter method uses (the others: each method's `uses`); state tuning alone
# uses STATE_PEFT_FIELDS
COMMON_PEFT_FIELDS = ("method", "r", "targets", "train_parts", "seed", "train_state")
STATE_PEFT_FIELDS = ("method", "train_parts", "seed")
# The flags of PeftConfig's fields ({flag: field}); --peft (the method, or none) is handled apart.
PEFT_FLAGS = {flag_name(f): f.name for f in dataclasses.fields(PeftConfig) if flag_name(f)}
# The short names of scripts/train_*.sh, also accepted as config-file keys.
ALIASES = {"rank": "peft_r", "data": "data_file", "lr": "lr_init"}
# --steps and --gpus, parsed as the fields they set
SHORT_FORM_FIELDS = {"steps": "epoch_steps", "gpus": "devices"}


@dataclass
class TrainConfig:
    # model
    load_model: str = option("", "the base RWKV6 .pth to fine-tune; empty: a random init of --model, saved as "
                                 "PROJ_DIR/base.pth", metavar="PATH")
    model: str = option("", "a model preset (tiny, 0.1b, 0.4b, 1.6b, 3b, 7b, 14b) or config JSON, for a random "
                            "init; with --load_model, it must describe that file; a .pth here means --load_model",
                        metavar="PRESET|FILE")
    proj_dir: str = option("out", "the run's directory: train_config.json, metrics.csv, loss.png, "
                                  "checkpoint-NNNNNN/", metavar="DIR")
    # data
    data_file: str = option("", "binidx data: PREFIX.bin and PREFIX.idx (scripts/make_data.sh writes them)",
                            metavar="PREFIX")
    data_type: str = option("binidx", "binidx: RWKV-LM's random windows across documents; pad: one document per "
                                      "sample; sft: like pad, loss on the responses only", choices=DATA_TYPES)
    ctx_len: int = option(512, "tokens per sample", minimum=1)
    chunk_ctx: int = option(0, "infctx: run each sample as chunks of this many tokens, every state carried to the "
                               "next chunk with its gradient, each chunk recomputed in the backward; memory is one "
                               "chunk's activations plus the states between chunks, the loss and gradients those of "
                               "the whole sample; 0: the whole sample at once", minimum=0)
    micro_bsz: int = option(1, "samples per GPU per forward", minimum=1)
    num_workers: int = option(0, "DataLoader worker processes", minimum=0)
    val_data: str = option("", "held-out binidx data: eval.py's loss on it (windows of ctx_len, sft responses only "
                               "with --data_type sft) every --val_every steps and at the end, as val_loss in "
                               "metrics.csv, the progress bar and loss.png; empty: no validation", metavar="PREFIX")
    val_every: int | None = option(None, "validate every N optimizer steps (with --val_data)",
                                   derived="the checkpoint interval, epoch_steps x epoch_save", minimum=1)
    val_windows: int = option(0, "validate on the first K windows of --val_data only; 0: all", minimum=0)
    # length and saving (RWKV-LM's mini-epochs)
    epoch_steps: int = option(1000, "optimizer steps per epoch", minimum=1)
    epoch_count: int = option(1, "epochs; the run is epoch_steps x epoch_count optimizer steps", minimum=1)
    epoch_save: int = option(1, "save a checkpoint every N epochs (and always at the end)", minimum=1)
    keep_trainer_states: int = option(1, "checkpoints that keep the optimizer state for --resume, newest first "
                                         "(every checkpoint keeps its adapter)", minimum=0)
    # optimizer and schedule
    lr_init: float = option(1e-4, "peak learning rate, reached after the warmup")
    lr_final: float | None = option(None, "learning rate at the last step", derived="lr_init / 10")
    lr_schedule: str = option("cos", "decay from lr_init to lr_final after the warmup", choices=LR_SCHEDULES)
    warmup_steps: int | None = option(None, "linear warmup steps from 0 to lr_init",
                                      derived=f"{DEFAULT_WARMUP}, or a tenth of the run when that is shorter",
                                      minimum=0)
    beta1: float = option(0.9, "Adam beta1")
    beta2: float = option(0.99, "Adam beta2")
    adam_eps: float = option(1e-8, "Adam epsilon")
    weight_decay: float = option(0.0, "AdamW weight decay, on the adapter matrices only (every matrix when "
                                      "--peft none)", minimum=0)
    grad_clip: float = option(1.0, "clip the gradient norm to this (0: no clipping)", minimum=0)
    accumulate_grad_batches: int = option(1, "micro-batches per optimizer step", minimum=1)
    l2wrap: bool = option(True, "RWKV-LM's L2Wrap: a small push of each position's largest logit towards 0")
    # hardware
    accelerator: str = option("auto", "where to train; auto: a GPU when one is visible", choices=ACCELERATORS)
    strategy: str = option("deepspeed_stage_1", "DeepSpeed ZeRO stage (offload: optimizer, and parameters at "
                                                "stage 3, in CPU RAM)", choices=STRATEGIES)
    devices: int = option(1, "GPUs (or CPU processes) per node", minimum=1)
    num_nodes: int = option(1, "machines", minimum=1)
    precision: str | None = option(None, "bf16: bf16 weights and activations, fp32 adapters; fp32; tf32: fp32 "
                                         "with TF32 matmuls", choices=PRECISIONS, derived="bf16 on a GPU, fp32 on "
                                                                                         "a CPU")
    grad_cp: bool = option(False, "gradient checkpointing: recompute each block in the backward (less memory)")
    wkv_backend: str = option("auto", "WKV6 implementation; auto: our CUDA kernel for bf16 on a GPU, chunked "
                                      "otherwise", choices=WKV_BACKENDS)
    seed: int = option(42, "seeds the data order, the adapters' init and dropout")
    load_state: str = option("", "start the tuned initial states (--peft state, --train_state 1) from this state "
                                 "file (RWKV-LM's or RWKV-PEFT's blocks.{i}.att.time_state .pth, or a state.pth of "
                                 "ours); empty: zeros", metavar="FILE")
    # adapters: --peft METHOD|none and the flags of PeftConfig's fields
    peft: PeftConfig | None = option(default_factory=lambda: DEFAULT_PEFT, flag=False,
                                     help="the adapters; None: full fine-tuning")
    # logging and resuming
    log: str = option("csv", "where metrics go besides metrics.csv and the progress bar", choices=LOGGERS)
    wandb_project: str = option("rwkv6-peft", "the Weights & Biases project, with --log wandb")
    progress_bar: bool = option(True, "show the progress bar")
    resume: str = option("", "continue a run: latest (its newest checkpoint; an error if none), auto (the "
                             "newest if any), or a checkpoint directory; empty: start fresh",
                         metavar="latest|auto|DIR")
    overwrite: bool = option(False, "start a new run in a --proj_dir that holds an earlier run's files but no "
                                    "checkpoint (a stopped run's train_config.json, metrics.csv, loss.png, a base.pth "
                                    "of another model or seed), replacing them")
    # what was derived, and how (filled by config_from_values), and the --config files read (by parse_args)
    derived: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    sources: list = field(default_factory=list, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.peft is not None and self.peft.seed != self.seed:
            self.peft = self.peft.replace(seed=self.seed)          # --seed seeds the adapters too

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
        """The adapters (the same as `.peft`; None for full fine-tuning)."""
        return self.peft

    def to_flags(self) -> dict[str, Any]:
        """The configuration as flag names and values: what train_config.json records, and what
        `--config train_config.json` reads back."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if flag_name(f) is not None and f.init:
                out[f.name] = getattr(self, f.name)
        out["peft"] = self.peft.method if self.peft else "none"
        if self.peft:
            for flag, name in PEFT_FLAGS.items():
                if flag != "peft":
                    value = getattr(self.peft, name)
                    out[flag] = list(value) if isinstance(value, tuple) else value
        return out

    def to_dict(self) -> dict:
        """to_flags(), plus {"derived": {field: rule}} for the values this configuration derived."""
        return {**self.to_flags(), "derived": dict(self.derived)}


# ------------------------------------------------------------------ reading flags and files

TRAIN_FLAGS = {flag_name(f): f.name for f in dataclasses.fields(TrainConfig) if flag_name(f) and f.init}
KNOWN_KEYS = set(TRAIN_FLAGS) | set(PEFT_FLAGS) | set(SHORT_FORM_FIELDS)


def read_config_file(path: str | Path) -> dict:
    """A JSON or YAML mapping of flag names to values. A run's own train_config.json reads back:
    its "derived" entry names the values that were derived, and they are derived again."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--config {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"--config {path} is not a text file (JSON or YAML expected)") from None
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml
            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as e:
        first = " ".join(str(e).split())                          # YAML's messages run over several lines
        raise ValueError(f"--config {path} cannot be parsed: {first}") from None
    if not isinstance(data, dict):
        raise ValueError(f"--config {path} must hold a mapping of flag names to values")
    derived = data.pop("derived", None) or {}
    values = {}
    for key, value in data.items():
        name = str(key).lstrip("-").replace("-", "_")
        name = ALIASES.get(name, name)
        if name not in KNOWN_KEYS:
            close = difflib.get_close_matches(name, sorted(KNOWN_KEYS), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ValueError(f"--config {path}: unknown key {key!r}{hint}")
        if name not in derived:
            values[name] = value
    return values


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train.py", allow_abbrev=False, argument_default=argparse.SUPPRESS,
        usage="python train.py [--config FILE ...] [--FLAG VALUE ...]",
        description="Fine-tune RWKV6 with Bone, Bat, DiSHA, LoRA or PiSSA, its initial states (state tuning) or "
                    "every weight, under Lightning + "
                    "DeepSpeed. Values come from the defaults, then each --config FILE in order, then the flags "
                    "given here.",
        epilog="Derived values (lr_final, warmup_steps, precision) are printed at the start of a run; "
               "PROJ_DIR/train_config.json records every value used.")
    p.add_argument("--config", action="append", metavar="FILE",
                   help="JSON or YAML file with flag names as keys (a run's train_config.json works); several are "
                        "read in order; flags given here win (default: none)")
    run = p.add_argument_group("training")
    add_flags(run, TrainConfig)
    adapters = p.add_argument_group("adapters (src/peft/config.py)")
    adapters.add_argument("--peft", metavar="|".join(PEFT_CHOICES),
                          help=f"the adapter method, or none to train every weight (default: {DEFAULT_PEFT.method}; "
                               f"one of: {', '.join(PEFT_CHOICES)})")
    add_flags(adapters, PeftConfig, defaults={"r": DEFAULT_PEFT.r}, skip=("method",))
    short = p.add_argument_group("short forms (scripts/train_*.sh)")
    short.add_argument("--rank", dest="peft_r", metavar="N", help="the same as --peft_r")
    short.add_argument("--data", dest="data_file", metavar="PREFIX", help="the same as --data_file")
    short.add_argument("--lr", dest="lr_init", metavar="X", help="the same as --lr_init")
    short.add_argument("--steps", metavar="N", help="total optimizer steps: sets --epoch_steps to steps / epoch_count "
                                                    "(default: epoch_steps x epoch_count)")
    short.add_argument("--gpus", metavar="N", help="GPUs per node; 0: train on the CPU (sets --accelerator and "
                                                   "--devices; default: --accelerator auto)")
    return p


NEGATIVE_NUMBER = re.compile(r"-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def attach_negative_numbers(argv: list[str]) -> list[str]:
    """["--lr_init", "-1e-3"] -> ["--lr_init=-1e-3"]: argparse takes "-1e-3" for a flag, so validation
    could not say what is wrong with the value."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and NEGATIVE_NUMBER.fullmatch(arg):
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """Defaults < each --config FILE in order < the other flags on the command line."""
    argv = attach_negative_numbers(list(sys.argv[1:] if argv is None else argv))
    given = vars(build_parser().parse_args(argv))
    files = given.pop("config", [])
    values: dict[str, Any] = {}
    for path in files:
        values.update(read_config_file(path))
    cfg = config_from_values(values, given)
    cfg.sources = list(files)
    return cfg


def convert_value(flag: str, value: Any) -> Any:
    """One flag's value parsed by its field's type (TrainConfig's fields, PeftConfig's flags, the short forms)."""
    if flag in PEFT_FLAGS and flag != "peft":
        return convert(PeftConfig, PEFT_FLAGS[flag], value, flag=flag)
    return convert(TrainConfig, SHORT_FORM_FIELDS.get(flag, TRAIN_FLAGS.get(flag, flag)), value, flag=flag)


def _layer(values: dict[str, Any], source: str) -> dict[str, Any]:
    """One layer of settings (the defaults file, a --config file, the command line) in flag names:
    aliases resolved, --gpus N made --accelerator / --devices, --model X.pth made --load_model.
    Done per layer, so that a later layer's explicit flags win over an earlier layer's short forms."""
    out = {ALIASES.get(k, k): v for k, v in values.items()}
    unknown = sorted(set(out) - KNOWN_KEYS)
    if unknown:
        raise ValueError(f"{source}: unknown setting(s) {unknown}")
    if "gpus" in out:
        gpus = convert_value("gpus", out.pop("gpus"))
        if gpus < 0:
            raise ValueError(f"--gpus must be 0 (the CPU) or a number of GPUs, got {gpus}")
        out.setdefault("accelerator", "cpu" if gpus == 0 else "gpu")
        if gpus:
            out.setdefault("devices", gpus)
    if str(out.get("model", "")).endswith(".pth"):          # --model MODEL.pth means --load_model
        out.setdefault("load_model", out.pop("model"))
    return out


def _steps(values: dict[str, Any], file_values: dict[str, Any], flags: dict[str, Any]) -> None:
    """--steps N (= epoch_steps x epoch_count), in place: it sets epoch_steps unless a later layer
    gives epoch_steps; given in the same layer as epoch_steps, the two must agree."""
    if "steps" not in values:
        return
    steps = convert_value("steps", values.pop("steps"))
    if steps <= 0:
        raise ValueError(f"--steps must be positive, got {steps}")
    count = convert_value("epoch_count", values.get("epoch_count", 1))
    steps_from = flags if "steps" in flags else file_values
    if "epoch_steps" in steps_from:
        if convert_value("epoch_steps", steps_from["epoch_steps"]) * count != steps:
            raise ValueError(f"--steps {steps} disagrees with --epoch_steps {steps_from['epoch_steps']} x "
                             f"--epoch_count {count}")
    elif "epoch_steps" not in flags:                        # --steps on the command line beats a file's epoch_steps
        if count <= 0:
            raise ValueError(f"--epoch_count must be positive, got {count}")
        if steps % count:
            raise ValueError(f"--steps {steps} is not a multiple of --epoch_count {count}: a run is epoch_steps x "
                             f"epoch_count steps")
        values["epoch_steps"] = steps // count


def _peft_from(values: dict[str, Any], flags: dict[str, Any]) -> PeftConfig | None:
    """The adapters the settings ask for. An adapter flag that does not apply to the method (any with
    --peft none) is an error when given on the command line; from a config file (a preset of another
    method, say) it is left out, so what is recorded is what is used."""
    method = str(values.get("peft", DEFAULT_PEFT.method))
    if method not in PEFT_CHOICES:
        raise ValueError(f"--peft {method!r} is not one of {', '.join(PEFT_CHOICES)}")
    applies = (() if method == "none" else STATE_PEFT_FIELDS if method == STATE_METHOD
               else (*adapter_class(method).uses, *COMMON_PEFT_FIELDS))
    stray = [flag for flag, name in PEFT_FLAGS.items() if flag in flags and flag != "peft" and name not in applies]
    if stray:
        raise ValueError(f"--{', --'.join(stray)} {'does' if len(stray) == 1 else 'do'} not apply to --peft {method}")
    if method == "none":
        return None
    fields = {name: convert_value(flag, values[flag]) for flag, name in PEFT_FLAGS.items()
              if flag in values and flag != "peft" and name in applies}
    if method == STATE_METHOD:
        return PeftConfig(method=method, **fields)
    return DEFAULT_PEFT.replace(method=method, **fields)


def derive(cfg: TrainConfig) -> dict[str, str]:
    """Fill the derived values left unset (None), in place; returns {field: how it was derived}."""
    derived = {}
    if cfg.lr_final is None:
        cfg.lr_final = cfg.lr_init / 10
        derived["lr_final"] = "lr_init / 10"
    if cfg.warmup_steps is None:
        cfg.warmup_steps = min(DEFAULT_WARMUP, cfg.total_steps // 10)
        derived["warmup_steps"] = (f"{DEFAULT_WARMUP}" if cfg.warmup_steps == DEFAULT_WARMUP
                                   else f"a tenth of the {cfg.total_steps}-step run")
    if cfg.val_every is None and cfg.val_data:
        cfg.val_every = cfg.save_every
        derived["val_every"] = "the checkpoint interval"
    if cfg.precision is None:
        on_gpu = cfg.resolved_accelerator == "gpu"
        cfg.precision = "bf16" if on_gpu else "fp32"
        derived["precision"] = "a GPU" if on_gpu else "no GPU: bf16 is slow on a CPU; --precision bf16 insists"
    return derived


def config_from_values(file_values: dict[str, Any], flags: dict[str, Any] | None = None) -> TrainConfig:
    """file_values: from --config files (or a dict); flags: from the command line, which win.
    Keys are flag names: TrainConfig's fields, PeftConfig's flags, the short forms."""
    file_values = _layer(file_values, "configuration file")
    flags = _layer(flags or {}, "command line")
    values = {**file_values, **flags}
    _steps(values, file_values, flags)
    train = {name: convert_value(flag, values[flag]) for flag, name in TRAIN_FLAGS.items() if flag in values}
    cfg = dataclass_from_dict(TrainConfig, {**train, "peft": _peft_from(values, flags)},
                              source="training configuration")
    cfg.derived = derive(cfg)
    return cfg


def describe_derived(cfg: TrainConfig) -> str:
    """One line for the start of a run: each derived value and its rule."""
    def value(name: str):
        if name in PEFT_FLAGS and cfg.peft is not None:           # an adapter setting (e.g. peft_targets)
            return getattr(cfg.peft, PEFT_FLAGS[name])
        return getattr(cfg, name)
    return "; ".join(f"{name} {format_value(value(name))} ({rule})" for name, rule in cfg.derived.items())


# ------------------------------------------------------------------ validation

def validate(cfg: TrainConfig) -> None:
    """Check the values alone (no files, no model, no data: the run's preflight does those).
    A problem is a one-line ValueError naming the flag."""
    unset = [name for name in ("lr_final", "warmup_steps", "precision") if getattr(cfg, name) is None]
    if unset:
        raise ValueError(f"TrainConfig: {', '.join(unset)} unset; build the configuration with config_from_values "
                         f"(or call derive) to derive them")
    for f in dataclasses.fields(TrainConfig):
        value = getattr(cfg, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"--{f.name} must be a finite number, got {value}")
        choices = f.metadata.get("choices") if f.metadata else None
        if choices and value not in choices:
            raise ValueError(f"--{f.name} {value!r} is not one of {', '.join(choices)}")
        minimum = f.metadata.get("minimum") if f.metadata else None
        if minimum is not None and value is not None and value < minimum:
            rule = "must not be negative" if minimum == 0 else "must be positive" if minimum == 1 \
                else f"must be at least {minimum}"
            raise ValueError(f"--{f.name} {rule}, got {value}")
    if not (cfg.lr_init > 0 and cfg.lr_final > 0):
        raise ValueError(f"--lr_init and --lr_final must be positive, got {cfg.lr_init} and {cfg.lr_final}")
    if cfg.lr_final > cfg.lr_init and cfg.lr_schedule != "constant":
        raise ValueError(f"--lr_final {cfg.lr_final:g} is above --lr_init {cfg.lr_init:g}: the learning rate would "
                         f"rise over the run; give a smaller --lr_final (or leave it out: lr_init / 10)")
    if not (0 <= cfg.beta1 < 1 and 0 <= cfg.beta2 < 1):
        raise ValueError(f"--beta1 and --beta2 must be in [0, 1), got {cfg.beta1} and {cfg.beta2}")
    if cfg.lr_init / (1 - cfg.beta1) >= FLOAT32_MAX:
        raise ValueError(f"--lr_init {cfg.lr_init:g} is too large: Adam's first update, lr / (1 - beta1) = "
                         f"{cfg.lr_init / (1 - cfg.beta1):g}, does not fit in float32 (at most {FLOAT32_MAX:.3g})")
    if cfg.adam_eps <= 0:
        raise ValueError(f"--adam_eps must be positive, got {cfg.adam_eps}")
    if cfg.warmup_steps >= cfg.total_steps and cfg.total_steps > 1:
        raise ValueError(f"--warmup_steps {cfg.warmup_steps} leaves no steps of the {cfg.total_steps} to train after the "
                         f"warmup; give a smaller --warmup_steps")
    if cfg.strategy.endswith("offload") and cfg.resolved_accelerator == "cpu":
        raise ValueError(f"--strategy {cfg.strategy} offloads to the CPU from a GPU; on a CPU use deepspeed_stage_1/2/3")
    if not 0 <= cfg.seed < 2**32:
        raise ValueError(f"--seed must be in [0, 2^32), got {cfg.seed}")
    if not cfg.proj_dir.strip():
        raise ValueError("--proj_dir is empty: give the run's directory")
    if (cfg.val_every is not None or cfg.val_windows) and not cfg.val_data:
        raise ValueError("--val_every and --val_windows set how --val_data is used: give --val_data PREFIX")
    if cfg.load_state and not (cfg.peft is not None and cfg.peft.train_state):
        raise ValueError(f"--load_state {cfg.load_state} starts the tuned initial states, but this run tunes none: add "
                         f"--train_state 1 (or use --peft state)")
    on_cpu = cfg.resolved_accelerator == "cpu"
    if cfg.wkv_backend == "cuda" and on_cpu:
        raise ValueError("--wkv_backend cuda runs on a GPU; on a CPU use chunked (or auto)")
    if cfg.wkv_backend == "cuda_emulated" and (not on_cpu or cfg.precision != "bf16"):
        raise ValueError("--wkv_backend cuda_emulated runs the CUDA kernel's source on a CPU, in bf16: it needs "
                         "--gpus 0 --precision bf16 (it is slow: for tests)")
