"""Adapter files: save_adapter / load_adapter, finding the newest checkpoint, reading any format.

Our format is a directory with two files:
    adapter.pth          the trainable tensors (adapters, train_parts, tuned states) and PiSSA's
                         start point, under the model's own key names (blocks.0.att.key.bone, ...)
    adapter_config.json  {"format": "rwkv-adapter", "version": 1, "family": the model family ("x060", "x070"),
                          "peft": PeftConfig,
                          "base_model": the base's shape signature, "base_fingerprint": which
                          base file (when the trainer knows it), "step": N,
                          "tensors": {key: shape}, "adapter_sha256": hash of adapter.pth}
and, when the initial states were tuned, a third:
    state.pth            those states alone, a state file RWKV runtimes load (src/peft/state.py)
All are written atomically; the hash ties them together, so a save that was interrupted
between the two files is detected instead of loading a mismatched pair. RWKV-PEFT's files
are read by rwkv_peft.py; `read_any_adapter` and `load_adapter` take either. Directories written
under the format's earlier name, "rwkv6-peft-adapter", read as they always did.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Mapping

import torch
import torch.nn as nn

from ..model.checkpoint import check_state_dict
from ..utils.files import load_tensor_file
from ..utils.atomic import atomic_torch_save, atomic_write_text, new_temporary_directory, writing
from .adapter import Adapter
from ..model.family import family_of, get_family
from ..quant import QuantScheme, quant_record
from .apply import adapter_layers, adapter_state_dict, apply_peft
from .config import PeftConfig
from .hf_peft import is_hf_peft_directory, read_hf_peft_adapter
from .rwkv_peft import read_rwkv_peft_adapter
from .state import STATE_FILE, state_file_from

ADAPTER_FILE = "adapter.pth"
CONFIG_FILE = "adapter_config.json"
FULL_MODEL_FILE = "model.pth"                        # what a checkpoint of full fine-tuning holds instead
FORMAT = "rwkv-adapter"
FORMATS_READ = (FORMAT, "rwkv6-peft-adapter")        # the same format under its earlier name
ORIGIN = "ours"                                      # Adapter.origin of our directories ("RWKV-PEFT": its files)
VERSION = 1


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_adapter(model: nn.Module, config: PeftConfig | None, directory: str | Path, step: int | None = None,
                 tensors: Mapping[str, torch.Tensor] | None = None, base_fingerprint: str | None = None) -> Path:
    """Write adapter.pth + adapter_config.json into `directory` (created if missing), atomically.
    `tensors` replaces some of the model's own adapter tensors in the file (a trainer passes its fp32
    master copies); its keys must be among `adapter_state_dict(model)`'s. `base_fingerprint`
    (utils.files.file_fingerprint of the base .pth) lets a resume or a merge tell another base file."""
    config = config if config is not None else getattr(model, "peft_config", None)
    if config is None:
        raise ValueError("save_adapter: the model has no adapters (call apply_peft first)")
    config = config.for_family(model)
    if getattr(model, "peft_config", None) not in (None, config):
        raise ValueError(f"save_adapter: the config given ({config.method}) is not the one the model was "
                         f"built with ({model.peft_config.method})")
    own = adapter_state_dict(model)
    # a parameter partitioned by DeepSpeed ZeRO-3 holds an empty tensor; ds_shape is its real shape
    shapes = {k: tuple(v.shape) for k, v in own.items()}
    shapes.update({name: tuple(p.ds_shape) for name, p in model.named_parameters() if hasattr(p, "ds_shape")})
    given = dict(tensors or {})
    stray = sorted(set(given) - set(own))
    if stray:
        raise ValueError(f"save_adapter: {stray[:3]} are not adapter tensors of this model")
    for key, value in given.items():
        if tuple(value.shape) != shapes[key]:
            raise ValueError(f"save_adapter: {key} has shape {tuple(value.shape)}, the model's is {shapes[key]}")
    partitioned = sorted(k for k in own if k not in given and tuple(own[k].shape) != shapes[k])
    if partitioned:
        raise ValueError(f"save_adapter: {partitioned[:3]} are partitioned by DeepSpeed ZeRO-3; pass the gathered "
                         f"tensors (tensors=...)")
    tensors = {k: given.get(k, v).detach().to("cpu").contiguous() for k, v in own.items()}
    base = model.config.shape_signature()
    family = family_of(model).name
    quant = quant_record(model)                             # the base held quantised while training, if it was
    directory = Path(directory)

    def write(into: Path) -> None:
        atomic_torch_save(tensors, into / ADAPTER_FILE)
        meta = {"format": FORMAT, "version": VERSION, "family": family, "peft": config.to_dict(), "base_model": base,
                "base_fingerprint": base_fingerprint, "quant": quant, "step": step,
                "tensors": {k: list(v.shape) for k, v in tensors.items()},
                "adapter_sha256": _sha256(into / ADAPTER_FILE)}
        atomic_write_text(into / CONFIG_FILE, json.dumps(meta, indent=2) + "\n")
        if config.train_state:
            atomic_torch_save(state_file_from(tensors, model.config), into / STATE_FILE)

    if directory.exists():
        write(directory)
    else:                                   # a new directory appears whole, or not at all
        with writing(directory):
            directory.parent.mkdir(parents=True, exist_ok=True)
            tmp = new_temporary_directory(directory.parent, f".{directory.name}.")
        try:
            write(tmp)
            with writing(directory):
                os.replace(tmp, directory)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return directory


def read_adapter(directory: str | Path) -> Adapter:
    """Read one of our adapter directories, verifying that its two files belong together."""
    directory = Path(directory)
    config_path, tensor_path = directory / CONFIG_FILE, directory / ADAPTER_FILE
    for p in (config_path, tensor_path):
        if not p.is_file():
            raise FileNotFoundError(f"adapter {directory}: {p.name} is missing")
    try:
        meta = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"adapter {config_path} is not valid JSON: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") not in FORMATS_READ:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ValueError(f"adapter {config_path}: not an {FORMAT} config (format = {found!r})")
    if meta.get("version") != VERSION:
        raise ValueError(f"adapter {config_path}: version {meta.get('version')!r}, this code reads {VERSION}")
    for key, kinds in (("peft", (dict,)), ("base_model", (dict, type(None))), ("step", (int, type(None))),
                       ("base_fingerprint", (str, type(None))), ("quant", (dict, type(None)))):
        if not isinstance(meta.get(key), kinds) or (key == "step" and isinstance(meta.get(key), bool)):
            raise ValueError(f"adapter {config_path}: {key!r} holds {meta.get(key)!r}, expected "
                             f"{' or '.join(k.__name__ for k in kinds)}")
    digest = _sha256(tensor_path)
    if meta.get("adapter_sha256") != digest:
        raise ValueError(f"adapter {directory}: {ADAPTER_FILE} does not match {CONFIG_FILE} (sha256 {digest[:12]} "
                         f"!= {str(meta.get('adapter_sha256'))[:12]}): an interrupted save, or files from two saves")
    try:
        config = PeftConfig.from_dict(meta["peft"], source=str(config_path))
    except (TypeError, ValueError) as e:
        raise ValueError(f"adapter {config_path}: its 'peft' settings are not valid ({' '.join(str(e).split())})") \
            from None
    tensors = load_tensor_file(tensor_path, "adapter")
    base_model = meta.get("base_model")
    if base_model is not None and "family" not in base_model:     # written before signatures named the family
        base_model = {"family": meta.get("family") or "x060", **base_model}
    quant = meta.get("quant")
    if quant is not None:
        try:
            QuantScheme.from_record(quant)
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"adapter {config_path}: its 'quant' record {quant!r} is not valid ({e})") from None
    return Adapter(config, tensors, base_model, meta.get("step"), directory, ORIGIN,
                   files=(tensor_path, config_path), base_fingerprint=meta.get("base_fingerprint"), quant=quant)


def find_adapter(path: str | Path) -> Path:
    """A user's adapter path -> the adapter to use. A directory of ours is itself; a directory of
    checkpoints means the newest (the highest recorded step, then the newest file; hidden directories,
    such as a trainer's .checkpoint-*.tmp staging, are never used); a .pth is an RWKV-PEFT file;
    an RWKV-PEFT proj_dir means its highest rwkv-N.pth."""
    path = Path(path)
    if path.is_file():
        return path.parent if path.name in (ADAPTER_FILE, CONFIG_FILE) else path
    if not path.is_dir():
        raise FileNotFoundError(f"adapter {path} does not exist")
    if (path / CONFIG_FILE).is_file():
        return path
    subdirs = sorted(d for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    candidates = [d for d in subdirs if (d / CONFIG_FILE).is_file()]
    if candidates:
        def order(d: Path):
            try:
                step = json.loads((d / CONFIG_FILE).read_text()).get("step")
            except (OSError, ValueError, AttributeError) as e:
                raise ValueError(f"{d / CONFIG_FILE} cannot be read ({e}), so the newest adapter in {path} is unknown; "
                                 f"give the adapter directory itself") from None
            return (step if isinstance(step, int) else -1, (d / CONFIG_FILE).stat().st_mtime)
        return max(candidates, key=order)
    numbered = [(int(m.group(1)), p) for p in path.glob("rwkv-*.pth") if (m := re.fullmatch(r"rwkv-(\d+)\.pth", p.name))]
    if numbered:
        return max(numbered)[1]
    full = [d / FULL_MODEL_FILE for d in [path, *subdirs] if (d / FULL_MODEL_FILE).is_file()]
    if full:
        raise FileNotFoundError(f"no adapter in {path}: it holds a fully fine-tuned model ({full[-1]}), a plain RWKV "
                                f"checkpoint already: use it as it is, no merge is needed")
    raise FileNotFoundError(f"no adapter in {path}: expected {CONFIG_FILE}, checkpoint subdirectories holding one, "
                            f"or RWKV-PEFT rwkv-N.pth files")


def read_any_adapter(path: str | Path, method: str | None = None, lora_alpha: float | None = None,
                     pissa_init: str | Path | None = None, method_flags: str = "--bone / --bat / --lora / --pissa") \
        -> Adapter:
    """find_adapter + the right reader. `method`, when given, must agree with ours' config; `method_flags`:
    how the calling command takes the method of an RWKV-PEFT file (named when it is missing)."""
    found = find_adapter(path)
    if found.is_dir():
        adapter = read_hf_peft_adapter(found) if is_hf_peft_directory(found) else read_adapter(found)
        if method is not None and adapter.config.method != method:
            raise ValueError(f"adapter {found} is a {adapter.config.method} adapter, not {method}")
        return adapter
    if method is None:
        raise ValueError(f"{found} is a bare .pth (an RWKV-PEFT checkpoint?): say which method it is "
                         f"({method_flags})")
    return read_rwkv_peft_adapter(found, method, lora_alpha=lora_alpha, pissa_init=pissa_init)


def _describe_config_difference(have: PeftConfig, want: PeftConfig, model: nn.Module) -> list[str]:
    want = want.for_family(model)
    diffs = []
    if have.method != want.method:
        return [f"method {want.method} in the file, {have.method} in the model"]
    for key, value in want.options().items():
        if have.options()[key] != value:
            diffs.append(f"{key} {value} in the file, {have.options()[key]} in the model")
    for key in ("targets", "train_parts", "train_state"):
        if getattr(have, key) != getattr(want, key):
            diffs.append(f"{key} {list(getattr(want, key))} in the file, {list(getattr(have, key))} in the model")
    return diffs


def base_signature_difference(model_signature: dict, adapter_signature: dict | None) -> list[str]:
    """What differs between the model and the adapter's base: the two families when they differ (the
    shapes of two families are not comparable), else each differing shape."""
    if not adapter_signature:
        return []
    theirs, ours = adapter_signature.get("family"), model_signature.get("family")
    if theirs != ours:
        return [f"the adapter is for {_family_title(theirs)}, the model is {_family_title(ours)}"]
    return [f"{k} {adapter_signature.get(k)} in the adapter's base, {v} in this model"
            for k, v in model_signature.items() if adapter_signature.get(k) != v]


def _family_title(name) -> str:
    try:
        return f"{get_family(name).title} ({name})"
    except ValueError:
        return f"model family {name!r}"


@torch.no_grad()
def load_adapter(model: nn.Module, path: str | Path | Adapter, method: str | None = None,
                 lora_alpha: float | None = None, pissa_init: str | Path | None = None, verbose: bool = False) -> nn.Module:
    """Load an adapter into `model` strictly. A plain model gets the adapter's layers first; a
    model with adapters must have the same method, options, targets and train_parts. A different
    base model, a missing, unexpected or wrongly shaped tensor: an error saying what differs."""
    adapter = path if isinstance(path, Adapter) else read_any_adapter(path, method, lora_alpha, pissa_init)
    where = f"adapter {adapter.source}"
    diffs = base_signature_difference(model.config.shape_signature(), adapter.base_model)
    if diffs:
        raise ValueError(f"{where} was trained on another base model: " + "; ".join(diffs))
    have = getattr(model, "peft_config", None)
    if have is None:
        apply_peft(model, adapter.config, init_adapters=False, verbose=verbose)
    else:
        diffs = _describe_config_difference(have, adapter.config, model)
        if diffs:
            raise ValueError(f"{where} does not fit the model's adapters: " + "; ".join(diffs))
    expected = adapter_state_dict(model)
    check_state_dict({k: v.shape for k, v in expected.items()}, adapter.tensors, source=where)
    loaded = set()
    for name, layer in adapter_layers(model).items():
        keys = {t: f"{name}.{t}" for t in layer.file_tensors}
        layer.load_file_tensors({t: adapter.tensors[key] for t, key in keys.items()})
        loaded.update(keys.values())
    for key, target in expected.items():                 # the train_parts tensors
        if key not in loaded:
            target.copy_(adapter.tensors[key])
    return model
