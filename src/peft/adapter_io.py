"""Adapter files: save_adapter / load_adapter, RWKV-PEFT files, finding the newest checkpoint.

Our format is a directory with two files:
    adapter.pth          the trainable tensors (adapters and train_parts) and PiSSA's start
                         point, under the model's own key names (blocks.0.att.key.bone, ...)
    adapter_config.json  {"format": "rwkv6-peft-adapter", "version": 1, "peft": PeftConfig,
                          "base_model": the base's shape signature, "step": N,
                          "tensors": {key: shape}, "adapter_sha256": hash of adapter.pth}
Both are written atomically; the hash ties them together, so a save that was interrupted
between the two files is detected instead of loading a mismatched pair.

RWKV-PEFT writes one .pth (rwkv-N.pth in its proj_dir) with keys ending in .lora_A /
.lora_B, .bone, or .disha (2-D: Bone; 3-D: Bat with one block per input block), plus the
train_parts tensors under their base names; PiSSA's start is in a separate init_pissa.pth.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from ..atomic import atomic_torch_save, atomic_write_text
from .apply import adapter_layers, adapter_state_dict, apply_peft
from .config import PeftConfig

ADAPTER_FILE = "adapter.pth"
CONFIG_FILE = "adapter_config.json"
FORMAT = "rwkv6-peft-adapter"
VERSION = 1

# suffixes of the adapter tensors, by method
ADAPTER_SUFFIXES = {"bone": ("bone",), "bat": ("bat",), "disha": ("disha",), "lora": ("lora_A", "lora_B"),
                    "pissa": ("lora_A", "lora_B", "init_lora_A", "init_lora_B")}


@dataclass
class Adapter:
    """An adapter read from disk: its config, its tensors, what it was trained on."""
    config: PeftConfig
    tensors: dict[str, torch.Tensor]
    base_model: dict | None
    step: int | None
    source: Path
    origin: str                       # "rwkv6-peft" (ours) or "RWKV-PEFT"

    def layer_tensors(self) -> dict[str, dict[str, torch.Tensor]]:
        """{module name: {adapter tensor name: tensor}} for the adapter tensors."""
        suffixes = ADAPTER_SUFFIXES[self.config.method]
        layers: dict[str, dict[str, torch.Tensor]] = {}
        for key, value in self.tensors.items():
            module, _, leaf = key.rpartition(".")
            if leaf in suffixes:
                layers.setdefault(module, {})[leaf] = value
        return layers

    def extra_tensors(self) -> dict[str, torch.Tensor]:
        """The train_parts tensors (base key names), copied over the base when merging."""
        suffixes = ADAPTER_SUFFIXES[self.config.method]
        return {k: v for k, v in self.tensors.items() if k.rpartition(".")[2] not in suffixes}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_adapter(model: nn.Module, config: PeftConfig | None, directory: str | Path, step: int | None = None) -> Path:
    """Write adapter.pth + adapter_config.json into `directory` (created if missing), atomically."""
    config = config if config is not None else getattr(model, "peft_config", None)
    if config is None:
        raise ValueError("save_adapter: the model has no adapters (call apply_peft first)")
    if getattr(model, "peft_config", None) not in (None, config):
        raise ValueError(f"save_adapter: the config given ({config.method}) is not the one the model was "
                         f"built with ({model.peft_config.method})")
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in adapter_state_dict(model).items()}
    base = model.config.shape_signature() if hasattr(model, "config") else None
    directory = Path(directory)

    def write(into: Path) -> None:
        atomic_torch_save(tensors, into / ADAPTER_FILE)
        meta = {"format": FORMAT, "version": VERSION, "peft": config.to_dict(), "base_model": base,
                "step": step, "tensors": {k: list(v.shape) for k, v in tensors.items()},
                "adapter_sha256": _sha256(into / ADAPTER_FILE)}
        atomic_write_text(into / CONFIG_FILE, json.dumps(meta, indent=2) + "\n")

    if directory.exists():
        write(directory)
    else:                                   # a new directory appears whole, or not at all
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
        try:
            write(tmp)
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
    except json.JSONDecodeError as e:
        raise ValueError(f"adapter {config_path} is not valid JSON: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"adapter {config_path}: not an {FORMAT} config (format = {meta.get('format')!r})")
    if meta.get("version") != VERSION:
        raise ValueError(f"adapter {config_path}: version {meta.get('version')!r}, this code reads {VERSION}")
    digest = _sha256(tensor_path)
    if meta.get("adapter_sha256") != digest:
        raise ValueError(f"adapter {directory}: {ADAPTER_FILE} does not match {CONFIG_FILE} (sha256 {digest[:12]} "
                         f"!= {str(meta.get('adapter_sha256'))[:12]}): an interrupted save, or files from two saves")
    config = PeftConfig.from_dict(meta["peft"], source=str(config_path))
    try:
        tensors = torch.load(tensor_path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"cannot read adapter {tensor_path}: {e}") from None
    return Adapter(config, tensors, meta.get("base_model"), meta.get("step"), directory, "rwkv6-peft")


def read_rwkv_peft_adapter(path: str | Path, method: str, lora_alpha: float | None = None,
                           pissa_init: str | Path | None = None) -> Adapter:
    """Read an RWKV-PEFT checkpoint (one .pth) as an Adapter of `method`.

    bone: keys .bone, or 2-D .disha; bat: 3-D .disha (or .bat), one block per input block
    (bat_index="in"); lora: .lora_A/.lora_B, with lora_alpha (RWKV-PEFT does not store it);
    pissa: .lora_A/.lora_B plus .init_lora_A/.init_lora_B from `pissa_init` (its
    init_pissa.pth), scale 1 as RWKV-PEFT trains it. Other keys are train_parts tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"RWKV-PEFT adapter {path} does not exist")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"cannot read RWKV-PEFT adapter {path}: {e}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"RWKV-PEFT adapter {path} holds a {type(raw).__name__}, expected a dict of tensors")
    tensors: dict[str, torch.Tensor] = {}
    ranks = set()
    found = set()
    for key, value in raw.items():
        module, _, leaf = key.rpartition(".")
        if leaf in ("bone", "disha", "bat"):
            kind = "bat" if value.dim() == 3 else "bone"
            found.add(kind)
            ranks.add(int(value.shape[-1] if kind == "bat" else value.shape[0]))
            tensors[f"{module}.{kind}"] = value
        elif leaf in ("lora_A", "lora_B"):
            found.add("lora")
            if leaf == "lora_A":
                ranks.add(int(value.shape[0]))
            tensors[key] = value
        else:
            tensors[key] = value
    wanted = "lora" if method in ("lora", "pissa") else method
    if method not in ("bone", "bat", "lora", "pissa"):
        raise ValueError(f"RWKV-PEFT adapters are bone, bat, lora or pissa; got method {method!r}")
    if found != {wanted}:
        raise ValueError(f"{path}: holds {sorted(found) or 'no'} adapter tensors, expected {wanted} for --{method}")
    if len(ranks) != 1:
        raise ValueError(f"{path}: adapter tensors of several ranks {sorted(ranks)}")
    r = ranks.pop()
    if method == "lora" and lora_alpha is None:
        raise ValueError(f"{path}: RWKV-PEFT LoRA files do not record lora_alpha; pass it (--lora_alpha)")
    if method == "pissa":
        if pissa_init is None:
            raise ValueError(f"{path}: a PiSSA adapter needs RWKV-PEFT's init_pissa.pth (--pissa_init)")
        init = torch.load(pissa_init, map_location="cpu", weights_only=True)
        for key, value in init.items():
            if key.endswith(".init_lora_A") or key.endswith(".init_lora_B"):
                tensors[key] = value
    modules = sorted({k.rpartition(".")[0] for k in tensors
                      if k.rpartition(".")[2] in ADAPTER_SUFFIXES[method][:2]})
    extras = sorted(k for k in tensors if k.rpartition(".")[2] not in ADAPTER_SUFFIXES[method])
    config = PeftConfig(method=method, r=r, alpha=(float(r) if method == "pissa" else lora_alpha),
                        bat_index="in", targets=tuple(modules), train_parts=tuple(extras))
    step = int(m.group(1)) if (m := re.search(r"rwkv-(\d+)\.pth$", path.name)) else None
    return Adapter(config, tensors, None, step, path, "RWKV-PEFT")


def find_adapter(path: str | Path) -> Path:
    """A user's adapter path -> the adapter to use. A directory of ours is itself; a directory of
    checkpoints means the newest (highest step, then newest file); a .pth is an RWKV-PEFT file;
    an RWKV-PEFT proj_dir means its highest rwkv-N.pth."""
    path = Path(path)
    if path.is_file():
        return path.parent if path.name in (ADAPTER_FILE, CONFIG_FILE) else path
    if not path.is_dir():
        raise FileNotFoundError(f"adapter {path} does not exist")
    if (path / CONFIG_FILE).is_file():
        return path
    candidates = [d for d in path.iterdir() if d.is_dir() and (d / CONFIG_FILE).is_file()]
    if candidates:
        def order(d: Path):
            try:
                step = json.loads((d / CONFIG_FILE).read_text()).get("step")
            except (OSError, json.JSONDecodeError):
                step = None
            return (step if isinstance(step, int) else -1, (d / CONFIG_FILE).stat().st_mtime)
        return max(candidates, key=order)
    numbered = [(int(m.group(1)), p) for p in path.glob("rwkv-*.pth") if (m := re.fullmatch(r"rwkv-(\d+)\.pth", p.name))]
    if numbered:
        return max(numbered)[1]
    raise FileNotFoundError(f"no adapter in {path}: expected {CONFIG_FILE}, checkpoint subdirectories holding one, "
                            f"or RWKV-PEFT rwkv-N.pth files")


def read_any_adapter(path: str | Path, method: str | None = None, lora_alpha: float | None = None,
                     pissa_init: str | Path | None = None) -> Adapter:
    """find_adapter + the right reader. `method`, when given, must agree with ours' config."""
    found = find_adapter(path)
    if found.is_dir():
        adapter = read_adapter(found)
        if method is not None and adapter.config.method != method:
            raise ValueError(f"adapter {found} is a {adapter.config.method} adapter, not {method}")
        return adapter
    if method is None:
        raise ValueError(f"{found} is a bare .pth (an RWKV-PEFT checkpoint?): say which method it is "
                         f"(--bone / --bat / --lora / --pissa)")
    return read_rwkv_peft_adapter(found, method, lora_alpha=lora_alpha, pissa_init=pissa_init)


def _describe_config_difference(have: PeftConfig, want: PeftConfig) -> list[str]:
    diffs = []
    if have.method != want.method:
        return [f"method {want.method} in the file, {have.method} in the model"]
    for key, value in want.options().items():
        if have.options()[key] != value:
            diffs.append(f"{key} {value} in the file, {have.options()[key]} in the model")
    for key in ("targets", "train_parts"):
        if getattr(have, key) != getattr(want, key):
            diffs.append(f"{key} {list(getattr(want, key))} in the file, {list(getattr(have, key))} in the model")
    return diffs


def base_signature_difference(model_signature: dict, adapter_signature: dict | None) -> list[str]:
    if not adapter_signature:
        return []
    return [f"{k} {adapter_signature.get(k)} in the adapter's base, {v} in this model"
            for k, v in model_signature.items() if adapter_signature.get(k) != v]


@torch.no_grad()
def load_adapter(model: nn.Module, path: str | Path | Adapter, method: str | None = None,
                 lora_alpha: float | None = None, pissa_init: str | Path | None = None, verbose: bool = False) -> nn.Module:
    """Load an adapter into `model` strictly. A plain model gets the adapter's layers first; a
    model with adapters must have the same method, options, targets and train_parts. A different
    base model, a missing, unexpected or wrongly shaped tensor: an error saying what differs."""
    from ..model import check_state_dict
    adapter = path if isinstance(path, Adapter) else read_any_adapter(path, method, lora_alpha, pissa_init)
    where = f"adapter {adapter.source}"
    diffs = base_signature_difference(model.config.shape_signature(), adapter.base_model)
    if diffs:
        raise ValueError(f"{where} was trained on another base model: " + "; ".join(diffs))
    have = getattr(model, "peft_config", None)
    if have is None:
        apply_peft(model, adapter.config, init_adapters=False, verbose=verbose)
    else:
        diffs = _describe_config_difference(have, adapter.config)
        if diffs:
            raise ValueError(f"{where} does not fit the model's adapters: " + "; ".join(diffs))
    expected = adapter_state_dict(model)
    check_state_dict({k: v.shape for k, v in expected.items()}, adapter.tensors, source=where)
    layers = adapter_layers(model)
    if adapter.config.method == "pissa":
        for name, layer in layers.items():
            layer.set_pissa_start(adapter.tensors[f"{name}.init_lora_A"], adapter.tensors[f"{name}.init_lora_B"])
    for key, target in expected.items():
        target.copy_(adapter.tensors[key])
    return model
