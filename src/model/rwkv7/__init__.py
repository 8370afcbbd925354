"""RWKV-7 ("x070", Goose): its config (config.py), network (network.py), initialisation (init.py), its
Hugging Face layout (hf.py), and FAMILY, its record in the model-family registry (family.py; registered in families.py)."""

from ...wkv7 import wkv7
from ..family import Family
from . import gguf, hf
from .config import RWKV7Config
from .init import init_tensor
from .network import RWKV7

FAMILY = Family(
    name="x070", title="RWKV-7", preset_prefix="rwkv7", config_class=RWKV7Config, network_class=RWKV7,
    init_tensor=init_tensor,
    detect_keys=("blocks.0.att.r_k", "blocks.0.att.w0", "blocks.0.att.x_r"),
    # its six linear layers: the gate is a low-rank map (g1, g2) and the channel mix has no receptance
    default_targets=("att.receptance", "att.key", "att.value", "att.output", "ffn.key", "ffn.value"),
    state_file_transposed=False,           # its WKV state is [value, key], as state files hold it
    operator=wkv7,
    hf_layout=hf,                          # fla-hub's RWKV7ForCausalLM
    gguf_layout=gguf,                      # llama.cpp's "rwkv7"
)

__all__ = ["FAMILY", "RWKV7", "RWKV7Config", "init_tensor"]
