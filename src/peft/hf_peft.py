"""Adapter directories that Hugging Face peft saved (RWKV-PEFT's since it trains through peft), read as our
Adapter: adapter_config.json with a `peft_type`, and adapter_model.safetensors (or .bin) whose keys are the
model's module names under `base_model.model.`.

    LORA   X.lora_A.weight (r, in), X.lora_B.weight (out, r)          -> lora: lora_A, lora_B; alpha = lora_alpha
                                                                       (use_rslora: alpha / sqrt(r) as our alpha / r)
    MISS   X.miss_block, by its init_weights (peft's MissConfig):
           True  (default, "balance")  D (r, out): y += (sum of x's r-wide slices) D       -> bone: bone = D
           "bat"                       B (out/r, r, r): ΔW_pq = W_pq B_p + B_p            -> bat, index "out"
           "mini"                      M (r, mini_r): D[t, o] = M[t, o mod mini_r]         -> disha: r1 = mini_r,
                                                                                            r2 = r, disha = M^T
    BONE   X.bone_block, as MISS's default and "bat" (peft's name before MiSS)
Targets are the modules the file holds. What peft can save but our methods cannot compute (DoRA, a LoRA
bias, PiSSA's residual without its conversion, modules_to_save) is refused by name.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .adapter import Adapter
from .config import PeftConfig

CONFIG_FILE = "adapter_config.json"
WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")
PREFIX = "base_model.model."
ORIGIN = "Hugging Face peft"


def is_hf_peft_directory(directory: Path) -> bool:
    """A directory peft's save_pretrained wrote: its adapter_config.json names a peft_type."""
    try:
        meta = json.loads((Path(directory) / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and "peft_type" in meta


def _load(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            return load_file(path)
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"adapter {path} cannot be read: {first}") from None


def _refuse(meta: dict, where: str) -> None:
    checks = [(meta.get("use_dora"), "DoRA (use_dora)"),
              (meta.get("bias", "none") not in (None, "none"), f"a trained bias (bias={meta.get('bias')!r})"),
              (meta.get("modules_to_save"), f"modules_to_save {meta.get('modules_to_save')}"),
              (str(meta.get("init_lora_weights", "")).lower().startswith(("pissa", "olora", "corda")),
               f"an adapter relative to a modified base (init_lora_weights={meta.get('init_lora_weights')!r}); save "
               f"it with path_initial_model_for_weight_conversion, which makes it a plain LoRA")]
    for bad, what in checks:
        if bad:
            raise ValueError(f"{where}: peft saved {what}, which these methods do not compute")


def read_hf_peft_adapter(directory: str | Path) -> Adapter:
    directory = Path(directory)
    where = f"adapter {directory}"
    meta = json.loads((directory / CONFIG_FILE).read_text())
    peft_type = str(meta.get("peft_type", "")).upper()
    weights = next((directory / f for f in WEIGHT_FILES if (directory / f).is_file()), None)
    if weights is None:
        raise FileNotFoundError(f"{where}: peft's {' or '.join(WEIGHT_FILES)} is missing")
    _refuse(meta, where)
    raw = _load(weights)
    stray = sorted(k for k in raw if not k.startswith(PREFIX))
    if stray:
        raise ValueError(f"{where}: {weights.name} holds {stray[0]}, not under {PREFIX!r}")
    named = {k[len(PREFIX):]: v for k, v in raw.items()}
    if peft_type == "LORA":
        return _lora(named, meta, directory, weights)
    if peft_type in ("MISS", "BONE"):
        return _miss(named, meta, directory, weights, "miss_block" if peft_type == "MISS" else "bone_block")
    raise ValueError(f"{where}: peft_type {meta.get('peft_type')!r} is not one of LORA, MISS, BONE")


def _adapter(config: PeftConfig, tensors: dict, directory: Path, weights: Path) -> Adapter:
    return Adapter(config, tensors, None, None, directory, ORIGIN, files=(weights, directory / CONFIG_FILE))


def _lora(named: dict, meta: dict, directory: Path, weights: Path) -> Adapter:
    tensors, ranks = {}, set()
    for key, value in named.items():
        module, _, leaf = key.removesuffix(".weight").rpartition(".")
        if leaf not in ("lora_A", "lora_B") or not key.endswith(".weight") or value.dim() != 2:
            raise ValueError(f"adapter {directory}: {PREFIX}{key} {tuple(value.shape)} is not a LoRA matrix")
        tensors[f"{module}.{leaf}"] = value
        ranks.add(int(value.shape[0] if leaf == "lora_A" else value.shape[1]))
    r = int(meta.get("r") or 0)
    if ranks != {r}:
        raise ValueError(f"adapter {directory}: r is {r} in {CONFIG_FILE}, the matrices have rank {sorted(ranks)}")
    alpha = float(meta.get("lora_alpha", r))
    if meta.get("use_rslora"):
        alpha = alpha * r ** 0.5                    # rsLoRA scales by alpha / sqrt(r): our alpha / r
    modules = sorted({k.rpartition(".")[0] for k in tensors})
    return _adapter(PeftConfig(method="lora", r=r, alpha=alpha, targets=tuple(modules)), tensors, directory, weights)


def _miss(named: dict, meta: dict, directory: Path, weights: Path, leaf_name: str) -> Adapter:
    mode = meta.get("init_weights", True)
    mode = "bat" if mode == "bat" else "mini" if mode == "mini" else "balance"
    r = int(meta.get("r") or 0)
    tensors = {}
    for key, value in named.items():
        module, _, leaf = key.rpartition(".")
        if leaf != leaf_name:
            raise ValueError(f"adapter {directory}: {PREFIX}{key} is not a {leaf_name}")
        want = {"balance": 2, "bat": 3, "mini": 2}[mode]
        if value.dim() != want or value.shape[-1 if mode == "bat" else 0] != r:
            raise ValueError(f"adapter {directory}: {PREFIX}{key} has shape {tuple(value.shape)}, not the "
                             f"{want}-D {leaf_name} of r={r} its {CONFIG_FILE} ({mode}) describes")
        if mode == "balance":
            tensors[f"{module}.bone"] = value
        elif mode == "bat":
            tensors[f"{module}.bat"] = value
        else:
            tensors[f"{module}.disha"] = value.t().contiguous()
    modules = tuple(sorted({k.rpartition(".")[0] for k in tensors}))
    if mode == "balance":
        config = PeftConfig(method="bone", r=r, targets=modules)
    elif mode == "bat":
        config = PeftConfig(method="bat", r=r, bat_index="out", targets=modules)
    else:
        config = PeftConfig(method="disha", r=r, disha_r1=int(meta.get("mini_r") or 1), targets=modules)
    return _adapter(config, tensors, directory, weights)
