"""train.py's flags and --config files into a TrainConfig: defaults < each --config FILE in order <
command-line flags, with the short forms of scripts/train_*.sh (--rank, --data, --lr, --steps, --gpus)."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import re
import sys
from pathlib import Path
from typing import Any

from ...peft.config import PeftConfig
from ...peft.registry import STATE_METHOD, adapter_class
from ...utils.options import add_flags, convert, dataclass_from_dict, flag_name
from .derived import derive
from .train_config import DEFAULT_PEFT, PEFT_CHOICES, PEFT_FLAGS, TrainConfig

# PeftConfig's fields that every adapter method uses (the others: each method's `uses`); state tuning alone
# uses STATE_PEFT_FIELDS
COMMON_PEFT_FIELDS = ("method", "r", "targets", "train_parts", "seed", "train_state")
STATE_PEFT_FIELDS = ("method", "train_parts", "seed")
# The short names of scripts/train_*.sh, also accepted as config-file keys.
ALIASES = {"rank": "peft_r", "data": "data_file", "lr": "lr_init"}
# --steps and --gpus, parsed as the fields they set
SHORT_FORM_FIELDS = {"steps": "epoch_steps", "gpus": "devices"}

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
        description="Fine-tune RWKV-6 or RWKV-7 with Bone, Bat, DiSHA, LoRA or PiSSA, its initial states (state tuning) or "
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
