"""RWKV6 checkpoints: RWKV-LM's .pth files, read strictly and memory-mapped, written atomically.

    model = load_rwkv6("rwkv6-3b.pth", dtype=torch.bfloat16)     # every size from the shapes
    save_rwkv6(model, "copy.pth")                                # bf16, RWKV-LM's key order

A missing, unexpected or wrongly shaped key is an error naming it; nothing is loaded with
strict=False.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
import torch.nn as nn

from ..utils.atomic import atomic_torch_save
from .config import RWKV6Config
from .config7 import RWKV7Config
from .rwkv6 import RWKV6
from .rwkv7 import RWKV7

MODEL_CLASSES = {RWKV6Config: RWKV6, RWKV7Config: RWKV7}

def parameter_shapes(config: RWKV6Config | RWKV7Config) -> dict[str, torch.Size]:
    """Every key of the checkpoint and its shape, in RWKV-LM's order (built on the meta device: no memory)."""
    with torch.device("meta"):
        return {k: v.shape for k, v in MODEL_CLASSES[type(config)](config).state_dict().items()}


def model_family(state_dict: Mapping[str, object]) -> str:
    """"x060" (RWKV6) or "x070" (RWKV7), from the keys of a checkpoint."""
    if "blocks.0.att.r_k" in state_dict or "blocks.0.att.w0" in state_dict:
        return "x070"
    return "x060"


def _describe(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def check_state_dict(expected: Mapping[str, torch.Size], found: Mapping[str, object], source: str) -> None:
    """Strict comparison of key sets and shapes; raises ValueError naming the first problems."""
    problems = []
    for key, shape in expected.items():
        if key not in found:
            problems.append(f"missing key {key} (expected shape {_describe(shape)})")
        elif not isinstance(found[key], torch.Tensor):
            problems.append(f"key {key} holds a {type(found[key]).__name__}, not a tensor")
        elif tuple(found[key].shape) != tuple(shape):
            problems.append(f"key {key} has shape {_describe(found[key].shape)} in the file, "
                            f"the model expects {_describe(shape)}")
    for key in found:
        if key not in expected:
            what = _describe(found[key].shape) if isinstance(found[key], torch.Tensor) else type(found[key]).__name__
            problems.append(f"unexpected key {key} {what}")
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ValueError(f"{source}: " + "; ".join(problems[:3]) + more)


DTYPE_NAMES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
               "fp16": torch.float16, "float16": torch.float16, "fp64": torch.float64, "float64": torch.float64}


def as_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """torch.bfloat16, or its name: "bf16", "bfloat16", "fp32", ..."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str) and dtype in DTYPE_NAMES:
        return DTYPE_NAMES[dtype]
    raise ValueError(f"dtype {dtype!r} is not a torch dtype nor one of {', '.join(DTYPE_NAMES)}")


def as_path(path, what: str = "checkpoint") -> Path:
    if not isinstance(path, (str, Path)):
        raise ValueError(f"{what} path must be a str or a Path, got {type(path).__name__}")
    return Path(path)


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """torch.load a .pth memory-mapped (a 14B file is paged in, not copied), with clear errors."""
    path = as_path(path)
    if path.is_dir():
        raise ValueError(f"checkpoint {path} is a directory, not a .pth file")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        sd = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except Exception as mmap_error:   # legacy (non-zip) files cannot be memory-mapped
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            if "central directory" in str(mmap_error) or "central directory" in str(e):
                raise ValueError(f"cannot read checkpoint {path} ({path.stat().st_size} bytes): it is truncated or "
                                 f"damaged (its zip directory, written last, is missing)") from None
            first = str(e).splitlines()[0] if str(e) else ""
            raise ValueError(f"cannot read checkpoint {path}: {e.__class__.__name__}: {first}") from None
    if not isinstance(sd, dict):
        raise ValueError(f"checkpoint {path} holds a {type(sd).__name__}, expected a dict of tensors")
    return sd


def config_from_checkpoint(state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint",
                           **runtime) -> RWKV6Config | RWKV7Config:
    """The config of either family, every size read from the shapes (the family from the keys)."""
    config_class = RWKV7Config if model_family(state_dict) == "x070" else RWKV6Config
    return config_class.from_state_dict(state_dict, source=source, **runtime)


def build_model(config: RWKV6Config | RWKV7Config) -> RWKV6 | RWKV7:
    """The network of the config's family (parameters uninitialised; build it on the meta device)."""
    return MODEL_CLASSES[type(config)](config)


def load_model(path: str | Path, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
               config: RWKV6Config | RWKV7Config | None = None, **runtime) -> RWKV6 | RWKV7:
    """Load an RWKV6 or RWKV7 .pth, whichever the file's keys say (or `config`'s type), as load_rwkv6."""
    if config is None:
        family = model_family(read_checkpoint(path))
        config_class = RWKV7Config if family == "x070" else RWKV6Config
    else:
        config_class = type(config)
    return _load(path, config_class, dtype, device, config, runtime)


def load_rwkv7(path: str | Path, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
               config: RWKV7Config | None = None, **runtime) -> RWKV7:
    """Load an RWKV7 .pth (RWKV-LM's x070 key names), strictly and memory-mapped, as load_rwkv6."""
    return _load(path, RWKV7Config, dtype, device, config, runtime)


def load_rwkv6(path: str | Path, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
               config: RWKV6Config | None = None, **runtime) -> RWKV6:
    """Load an RWKV6 .pth (RWKV-LM key names). Every size is inferred from the shapes,
    unless `config` is given, in which case the file must match it exactly. Loading is
    strict: a missing, unexpected or wrongly shaped key is an error naming the key.
    `runtime` sets grad_cp / wkv_backend / wkv_chunk_size."""
    return _load(path, RWKV6Config, dtype, device, config, runtime)


def _load(path, config_class, dtype, device, config, runtime):
    dtype = as_dtype(dtype)
    sd = read_checkpoint(path)
    inferred = config is None
    if inferred:
        config = config_class.from_state_dict(sd, source=str(path), **runtime)
    elif runtime:
        config = config.replace(**runtime)
    with torch.device("meta"):
        model = MODEL_CLASSES[type(config)](config)
    try:
        check_state_dict(parameter_shapes(config), sd, source=str(path))
    except ValueError as e:
        if not inferred:
            raise
        # the expected shapes came from a few tensors of the file: name them, one of them may be the damaged one
        raise ValueError(f"{e} (the sizes were read from the file: {size_sources(sd)})") from None
    for key in list(sd):   # one tensor at a time: peak RAM is the model plus one tensor
        sd[key] = sd[key].to(device=device, dtype=dtype)
    model.load_state_dict(sd, strict=True, assign=True)
    return model.eval()


def size_sources(sd: Mapping[str, torch.Tensor]) -> str:
    """Which tensors RWKV6Config.from_state_dict reads each size from, with their shapes."""
    sources = (("vocab_size, n_embd", "emb.weight"), ("dim_att", "blocks.0.att.key.weight"),
               ("dim_ffn", "blocks.0.ffn.key.weight"), ("heads, head_size", "blocks.0.att.time_faaaa"),
               ("heads, head_size", "blocks.0.att.r_k"))
    return "; ".join(f"{sizes} from {key} {_describe(sd[key].shape)}" for sizes, key in sources if key in sd)


def rwkv6_state_dict(model_or_state: RWKV6 | Mapping[str, torch.Tensor],
                     dtype: torch.dtype | None = torch.bfloat16) -> dict[str, torch.Tensor]:
    """RWKV-LM's key set: contiguous CPU tensors, cast to `dtype` (None keeps each tensor's)."""
    sd = model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else model_or_state
    out = {}
    for key, value in sd.items():
        value = value.detach()
        if dtype is not None and value.is_floating_point():
            value = value.to(dtype)
        out[key] = value.to("cpu").contiguous()
    return out


def save_rwkv6(model_or_state: RWKV6 | Mapping[str, torch.Tensor], path: str | Path,
               dtype: torch.dtype | None = torch.bfloat16) -> Path:
    """Write an RWKV-LM-compatible .pth (bf16 by default) atomically: temp file, then rename."""
    path = Path(path)
    atomic_torch_save(rwkv6_state_dict(model_or_state, dtype), path)
    return path


save_rwkv7 = save_rwkv6          # the same file format: RWKV-LM's keys, atomic, bf16 by default
