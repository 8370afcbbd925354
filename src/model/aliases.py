"""The names earlier releases used, kept working: each is a thin alias of the family-neutral name.

    load_rwkv6(path) / load_rwkv7(path)    load_model(path, family="x060" / "x070")
    save_rwkv6 = save_rwkv7                save_checkpoint
    rwkv6_state_dict                       checkpoint_state_dict
    init_rwkv6 = init_rwkv7                init_model
    init_rwkv6_state_dict = ..._rwkv7_...  init_state_dict
    model_family(state_dict)               detect_family(state_dict).name
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch

from .checkpoint import checkpoint_state_dict, load_model, save_checkpoint
from .family import detect_family
from .init import init_model, init_state_dict


def load_rwkv6(path: str | Path, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
               config=None, **runtime) -> torch.nn.Module:
    """load_model for an RWKV-6 file; a file of another family is an error that says so."""
    return load_model(path, dtype, device, config, family="x060", **runtime)


def load_rwkv7(path: str | Path, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
               config=None, **runtime) -> torch.nn.Module:
    """load_model for an RWKV-7 file; a file of another family is an error that says so."""
    return load_model(path, dtype, device, config, family="x070", **runtime)


def model_family(state_dict: Mapping[str, object]) -> str:
    """The family name ("x060", "x070") of a checkpoint's keys."""
    return detect_family(state_dict).name


save_rwkv6 = save_rwkv7 = save_checkpoint
rwkv6_state_dict = checkpoint_state_dict
init_rwkv6 = init_rwkv7 = init_model
init_rwkv6_state_dict = init_rwkv7_state_dict = init_state_dict
