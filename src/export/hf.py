"""Hugging Face (fla-hub layout): a directory that fla's RWKV7ForCausalLM, llama.cpp's HF converter and the
rwkv7-hf package read. The family's own module gives the names, layouts and config (Family.hf_layout;
RWKV-7's is src/model/rwkv7/hf.py); here the directory is put together:

    config.json              the family's hf_config
    model.safetensors        every tensor renamed and laid out, metadata {"format": "pt"} (transformers
                             requires it), written one tensor at a time
    rwkv_vocab_v20230424.txt the World vocabulary, as the `rwkv` package ships it
    tokenizer_config.json, special_tokens_map.json, added_tokens.json   the tokenizer's settings (fla-hub's
                             RwkvTokenizer reads the vocabulary file; id 0 ends a text)

The directory appears whole (written beside, then renamed). --dtype f32 (default), f16 or bf16; the
decay's bias (w_lora.lora.2.bias) stays fp32 in every dtype, as rwkv7-hf keeps it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from ..data.tokenizer import VOCAB_FILE, world_vocab_path
from ..utils.atomic import new_temporary_directory, writing
from .safetensors_file import write_safetensors

DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
CONFIG_NAMES = {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}
KEPT_FP32 = ("w_lora.lora.2.bias",)
END_OF_TEXT = "<|rwkv_tokenizer_end_of_text|>"


def layout_of(source):
    layout = source.family.hf_layout
    if layout is None:
        raise ValueError(f"--format hf: {source.family.title} models have no Hugging Face layout here (fla-hub's "
                         f"is RWKV-7's); use --format st or gguf")
    return layout


def tensor_dtype(name: str, dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if name.endswith(KEPT_FP32) else dtype


def tokenizer_files() -> dict[str, str]:
    special = {"bos_token": END_OF_TEXT, "eos_token": END_OF_TEXT, "unk_token": END_OF_TEXT, "pad_token": END_OF_TEXT}
    config = {"tokenizer_class": "RwkvTokenizer", "model_max_length": 1000000000000000019884624838656,
              "added_tokens_decoder": {"0": {"content": END_OF_TEXT, "lstrip": False, "normalized": False,
                                             "rstrip": False, "single_word": False, "special": True}},
              "clean_up_tokenization_spaces": False, **special}
    return {"tokenizer_config.json": json.dumps(config, indent=2) + "\n",
            "special_tokens_map.json": json.dumps(special, indent=2) + "\n",
            "added_tokens.json": json.dumps({END_OF_TEXT: 0}, indent=2) + "\n"}


def export_model(source, out: Path, dtype: str = "f32") -> int:
    """Write the directory `out` for `source` (an ExportSource); returns the number of tensors."""
    layout = layout_of(source)
    torch_dtype = DTYPES[dtype]
    names = [(key, layout.hf_name(key)) for key, _ in source.layout()]
    entries = [(name, tensor_dtype(name, torch_dtype), layout.hf_shape(key, shape))
               for (key, name), (_, shape) in zip(names, source.layout()) if name is not None]
    kept = {key for key, name in names if name is not None}

    def tensors():
        for key, tensor in source.tensors():
            if key in kept:
                name = layout.hf_name(key)
                yield name, layout.hf_tensor(key, tensor).to(tensor_dtype(name, torch_dtype)).contiguous()

    out = Path(out)
    with writing(out):
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = new_temporary_directory(out.parent, f".{out.name}.")
    try:
        write_safetensors(tmp / "model.safetensors", entries, tensors(), {"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(layout.hf_config(source.config, CONFIG_NAMES[dtype]), indent=2)
                                         + "\n")
        shutil.copyfile(world_vocab_path(), tmp / VOCAB_FILE)
        for name, text in tokenizer_files().items():
            (tmp / name).write_text(text)
        with writing(out):
            if out.exists():                          # --overwrite (checked by the caller): the old one goes
                old = new_temporary_directory(out.parent, f".{out.name}.old.")
                os.replace(out, old / out.name)
                os.replace(tmp, out)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return len(entries)
