"""RWKV models: configuration, the network, checkpoints, initialisation.

    config.py       RWKV6Config: shapes and runtime options; presets (configs/model/)
    rwkv6.py        the RWKV6 ("x060", Finch) network, RWKV-LM's parameter names
    config7.py      RWKV7Config; rwkv7.py: the RWKV7 ("x070", Goose) network
    checkpoint.py   strict, memory-mapped loading and atomic saving of RWKV-LM .pth files
    init.py         RWKV-LM's random initialisation (`python -m src.init_model`)
    state.py        RWKVState: what the model carries between tokens; RWKV-LM's state files
"""

from .checkpoint import (build_model, check_state_dict, config_from_checkpoint, load_model, load_rwkv6, load_rwkv7, model_family, parameter_shapes,
                         read_checkpoint, rwkv6_state_dict, save_rwkv6, save_rwkv7)
from .config7 import RWKV7Config
from .rwkv7 import RWKV7
from .config import RWKV6Config, preset_names, resolve_config
from .state import RWKVState, read_state_file
from .rwkv6 import LN_X_EPS, RWKV6, Block, ChannelMix, TimeMix, time_shift

__all__ = ["RWKV7", "RWKV7Config", "load_rwkv7", "save_rwkv7", "load_model", "model_family", "build_model", "config_from_checkpoint", "RWKV6", "RWKV6Config", "RWKVState", "read_state_file", "Block", "TimeMix", "ChannelMix", "time_shift", "LN_X_EPS", "load_rwkv6", "save_rwkv6",
           "read_checkpoint", "check_state_dict", "parameter_shapes", "rwkv6_state_dict", "preset_names",
           "resolve_config"]
