"""RWKV models of every generation: the family registry, configs, networks, checkpoints, initialisation, state.

    family.py       the model-family registry: one Family record per generation (register_family, family_of)
    families.py     the built-in families, registered: rwkv6/ (x060, Finch) and rwkv7/ (x070, Goose), each
                    with its config.py, network.py (RWKV-LM's parameter names) and init.py
    config.py       RWKVConfig, what the families' configs share; presets (configs/model/), resolve_config
    base.py         the block skeleton every generation shares: embedding, blocks, head, state, checkpointing
    checkpoint.py   strict, memory-mapped loading and atomic saving of RWKV-LM .pth files (load_model)
    init.py         RWKV-LM's random initialisation (init_model; `python -m src.init_model`)
    state.py        RWKVState: what the model carries between tokens; RWKV-LM's state files
    aliases.py      the names of earlier releases (load_rwkv6, save_rwkv6, ...)
"""

from . import families as _builtin_families  # noqa: F401  (registers RWKV-6 and RWKV-7)
from .aliases import (init_rwkv6, init_rwkv6_state_dict, init_rwkv7, init_rwkv7_state_dict, load_rwkv6, load_rwkv7,
                      model_family, rwkv6_state_dict, save_rwkv6, save_rwkv7)
from .base import LN_X_EPS, RWKVBlock, RWKVModel, time_shift
from .checkpoint import (as_dtype, build_model, check_state_dict, checkpoint_state_dict, config_from_checkpoint,
                         load_model, parameter_shapes, read_checkpoint, save_checkpoint)
from .config import RWKVConfig, config_from_json, preset_names, resolve_config
from .family import Family, detect_family, families, family_of, get_family, register_family
from .init import init_model, init_state_dict
from .rwkv6 import RWKV6, Block, ChannelMix, RWKV6Config, TimeMix
from .rwkv7 import RWKV7, RWKV7Config
from .state import RWKVState, read_state_file

__all__ = [
    # the registry
    "Family", "register_family", "get_family", "families", "family_of", "detect_family",
    # configs, networks
    "RWKVConfig", "RWKV6Config", "RWKV7Config", "resolve_config", "config_from_json", "preset_names",
    "RWKVModel", "RWKVBlock", "RWKV6", "RWKV7", "Block", "TimeMix", "ChannelMix", "time_shift", "LN_X_EPS",
    # checkpoints, initialisation, state
    "load_model", "save_checkpoint", "checkpoint_state_dict", "read_checkpoint", "check_state_dict",
    "parameter_shapes", "build_model", "config_from_checkpoint", "as_dtype", "init_model", "init_state_dict",
    "RWKVState", "read_state_file",
    # earlier names
    "load_rwkv6", "load_rwkv7", "save_rwkv6", "save_rwkv7", "rwkv6_state_dict", "model_family", "init_rwkv6",
    "init_rwkv7", "init_rwkv6_state_dict", "init_rwkv7_state_dict",
]
