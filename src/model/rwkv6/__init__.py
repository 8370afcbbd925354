"""RWKV-6 ("x060", Finch): its config (config.py), network (network.py) and initialisation (init.py),
and FAMILY, its record in the model-family registry (family.py; registered in families.py)."""

from ...wkv6 import wkv6
from ..family import Family
from . import gguf
from .config import RWKV6Config
from .init import init_tensor
from .network import RWKV6, Block, ChannelMix, TimeMix

FAMILY = Family(
    name="x060", title="RWKV-6", preset_prefix="rwkv6", config_class=RWKV6Config, network_class=RWKV6,
    init_tensor=init_tensor,
    detect_keys=("blocks.0.att.time_faaaa", "blocks.0.att.time_maa_w1"),
    # the eight linear layers of a block
    default_targets=("att.receptance", "att.key", "att.value", "att.gate", "att.output",
                     "ffn.key", "ffn.receptance", "ffn.value"),
    state_file_transposed=True,            # our WKV state is [key, value]; state files hold [value, key]
    operator=wkv6,
    bare_presets=True,                     # '3b' means rwkv6-3b
    gguf_layout=gguf,                      # llama.cpp's "rwkv6"
)

__all__ = ["FAMILY", "RWKV6", "RWKV6Config", "Block", "TimeMix", "ChannelMix", "init_tensor"]
