"""Checkpoints of every family: RWKV-LM's .pth files, read strictly and memory-mapped, written atomically.

    model = load_model("rwkv7-g1-1.5b.pth", dtype=torch.bfloat16)   # the family from the keys, sizes from shapes
    save_checkpoint(model, "copy.pth")                              # bf16, RWKV-LM's key order

The family comes from the registry (family.py: detect_family); a missing, unexpected or wrongly
shaped key is an error naming it; nothing is loaded with strict=False.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
import torch.nn as nn

from ..quant import QuantLinear, QuantScheme, QuantizedWeight, check_quantizable, linears_to_quantize
from ..quant.weight import release_freed_host_memory
from ..utils.atomic import atomic_torch_save
from .config import RWKVConfig
from .family import detect_family, family_of, get_family


def build_model(config: RWKVConfig) -> nn.Module:
    """The network of the config's family (parameters uninitialised; build it on the meta device)."""
    return family_of(config).network_class(config)


def parameter_shapes(config: RWKVConfig) -> dict[str, torch.Size]:
    """Every key of the checkpoint and its shape, in RWKV-LM's order (built on the meta device: no memory)."""
    with torch.device("meta"):
        return {k: v.shape for k, v in build_model(config).state_dict().items()}


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


# The one table of dtype names. STORED_DTYPES: what the commands' --dtype flags write.
DTYPE_NAMES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
               "fp16": torch.float16, "float16": torch.float16, "fp64": torch.float64, "float64": torch.float64}
STORED_DTYPES = {name: DTYPE_NAMES[name] for name in ("bf16", "fp16", "fp32")}
FLOAT_DTYPES = frozenset(DTYPE_NAMES.values())


def as_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """A floating-point torch dtype, or its name: "bf16", "bfloat16", "fp32", ..."""
    if isinstance(dtype, torch.dtype):
        if dtype not in FLOAT_DTYPES:
            raise ValueError(f"dtype {dtype} is not a floating-point dtype a model can hold: "
                             f"use one of {', '.join(DTYPE_NAMES)}")
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
                           **runtime) -> RWKVConfig:
    """The config of the checkpoint's family (from its keys), every size read from the shapes."""
    return detect_family(state_dict, source).config_class.from_state_dict(state_dict, source=source, **runtime)


def load_model(path: str | Path, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
               config: RWKVConfig | None = None, family: str | None = None, quant: QuantScheme | None = None,
               **runtime) -> nn.Module:
    """Load an RWKV-LM .pth of any registered family, strictly and memory-mapped.

    The family comes from the file's keys (or `config`'s; `family` insists on one: a file of another is
    an error naming both). Every size is inferred from the shapes unless `config` is given, in which
    case the file must match it exactly. A missing, unexpected or wrongly shaped key is an error naming
    the key. `runtime` sets grad_cp / wkv_backend / wkv_chunk_size. Peak memory: the model plus one tensor.
    `quant`: the scheme's linear layers are quantised on `device` as they are read, one tensor at a time,
    so the peak is the quantised model plus one full-precision tensor (model.quant_scheme records it)."""
    dtype = as_dtype(dtype)
    sd = read_checkpoint(path)
    if family is not None:                    # insisted on: a file of another family is refused by name
        wanted = get_family(family)
        try:
            found = family_of(config) if config is not None else detect_family(sd)
        except ValueError:
            found = wanted                        # no family's keys: read as this family's, missing keys named
        if found is not wanted:
            raise ValueError(f"checkpoint {path} is an {found.title} ({found.name}) model, not {wanted.title} "
                             f"({wanted.name}): load it with load_model, which reads every family")
        config_class = wanted.config_class
    elif config is not None:
        config_class = family_of(config).config_class
    else:
        config_class = detect_family(sd, f"checkpoint {path}").config_class
    inferred = config is None
    if inferred:
        config = config_class.from_state_dict(sd, source=str(path), **runtime)
    elif runtime:
        config = config.replace(**runtime)
    with torch.device("meta"):
        model = build_model(config)
    try:
        check_state_dict(parameter_shapes(config), sd, source=str(path))
    except ValueError as e:
        if not inferred:
            raise
        # the expected shapes came from a few tensors of the file: name them, one of them may be the damaged one
        raise ValueError(f"{e} (the sizes were read from the file: {size_sources(sd, config_class)})") from None
    quantized = {}
    if quant is not None:
        check_quantizable(model, quant)                   # shapes first: nothing quantised if one cannot be
        quantized = {f"{name}.weight": name for name in linears_to_quantize(model, quant)}
    for key in list(sd):   # one tensor at a time: peak RAM is the model plus one tensor
        if key in quantized:
            name = quantized[key]
            weight = QuantizedWeight.from_float(sd.pop(key).to(device=device, dtype=dtype), quant, name)
            _set_submodule(model, name, QuantLinear(weight))
            release_freed_host_memory()                  # the full-precision temporaries, before the next
            sd.update({f"{name}.weight.{b}": t for b, t in weight.state_dict().items()})
        else:
            sd[key] = sd[key].to(device=device, dtype=dtype)
    model.load_state_dict(sd, strict=True, assign=True)
    if quant is not None:
        model.quant_scheme = quant
    return model.eval()


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def size_sources(sd: Mapping[str, torch.Tensor], config_class: type) -> str:
    """Which tensors the family's config read each size from, with their shapes."""
    return "; ".join(f"{sizes} from {key} {_describe(sd[key].shape)}"
                     for key, sizes in config_class.size_sources().items() if key in sd)


def checkpoint_state_dict(model_or_state: nn.Module | Mapping[str, torch.Tensor],
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


def save_checkpoint(model_or_state: nn.Module | Mapping[str, torch.Tensor], path: str | Path,
                    dtype: torch.dtype | None = torch.bfloat16) -> Path:
    """Write an RWKV-LM-compatible .pth of any family (bf16 by default; None keeps each tensor's dtype)
    atomically: temp file, then rename."""
    path = Path(path)
    atomic_torch_save(checkpoint_state_dict(model_or_state, None if dtype is None else as_dtype(dtype)), path)
    return path
