"""GGUF for llama.cpp (and what is built on it: Ollama, LM Studio, llama-cpp-python), written with the
`gguf` package llama.cpp maintains. The family's own module gives the architecture, metadata and each
tensor's make-up (Family.gguf_layout: src/model/rwkv6/gguf.py, src/model/rwkv7/gguf.py); here the file
is put together, one tensor at a time:

    header, metadata, the World tokenizer     tokenizer.ggml.model "rwkv", the vocabulary of the `rwkv`
                                              package's file (id 0 "<s>", control; each line's token as
                                              llama.cpp's converter stores it: its bytes' repr, without
                                              b'...'), eos / bos 0, end of turn 261 ("\\n\\n")
    tensor table, then the data               in the order the .pth provides what they need; a tensor built
                                              from several (the fused lerp) waits for its last one

--dtype: f32, f16, bf16 or q8_0 for the embedding, head and projections; vectors, norms, the fused lerp
and the decay's (and RWKV-6's token-shift) low-rank maps stay f32 as llama.cpp's converter keeps them,
RWKV-7's other low-rank maps are f16 under q8_0 (llama-quantize leaves them so), and a matrix whose rows
are not a whole number of 32-value q8_0 blocks is f16. Smaller types: llama.cpp's own llama-quantize.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..data.tokenizer import world_vocab_path
from ..utils.atomic import atomic_path

DTYPES = ("f32", "f16", "bf16", "q8_0")
END_OF_TURN = 261                          # "\n\n": where RWKV's chat turns end


def layout_of(source):
    layout = source.family.gguf_layout
    if layout is None:
        raise ValueError(f"--format gguf: {source.family.title} models have no GGUF layout here")
    return layout


@lru_cache(maxsize=4)
def world_tokens(vocab_size: int) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """(token texts, token types) as llama.cpp's "rwkv" tokenizer reads them (the file is parsed once)."""
    import gguf
    tokens, types = ["<s>"], [gguf.TokenType.CONTROL]
    for number, line in enumerate(world_vocab_path().read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.rstrip("\r").split(" ")
        if not line.strip():
            continue
        token = ast.literal_eval(" ".join(parts[1:-1]))
        data = token.encode("utf-8") if isinstance(token, str) else token
        if len(data) != int(parts[-1]) or int(parts[0]) != number:
            raise ValueError(f"{world_vocab_path()}: line {number} is not 'id token length'")
        tokens.append(repr(data)[2:-1])
        types.append(gguf.TokenType.NORMAL)
    if len(tokens) > vocab_size:
        raise ValueError(f"--format gguf: the World vocabulary has {len(tokens)} tokens, the model only {vocab_size}")
    for i in range(len(tokens), vocab_size):
        tokens.append(f"[PAD{i}]")
        types.append(gguf.TokenType.UNUSED)
    return tuple(tokens), tuple(int(t) for t in types)


def stored_type(kind: str, dtype: str, shape: tuple):
    """The GGML type a tensor of `kind` is written in under --dtype `dtype`."""
    import gguf
    T = gguf.GGMLQuantizationType
    if kind == "f32" or dtype == "f32":
        return T.F32
    if dtype == "q8_0" and (kind == "lora" or shape[-1] % 32):
        return T.F16
    return {"f16": T.F16, "bf16": T.BF16, "q8_0": T.Q8_0}[dtype]


def as_stored(tensor: torch.Tensor, qtype) -> np.ndarray:
    import gguf
    T = gguf.GGMLQuantizationType
    data = tensor.detach().to("cpu", torch.float32).contiguous().numpy()
    if qtype == T.F32:
        return data
    if qtype == T.F16:
        return data.astype(np.float16)
    return gguf.quants.quantize(data, qtype)                    # bf16, q8_0: packed bytes (uint8)


def stored_bytes(qtype, shape: tuple) -> int:
    import gguf
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    n = int(np.prod(shape))
    return n // block * size


def export_model(source, out: Path, dtype: str = "f32") -> int:
    """Write `source` (an ExportSource) as a GGUF file at `out`; returns the number of tensors."""
    import gguf
    layout = layout_of(source)
    config = source.config
    order = {key: i for i, (key, _) in enumerate(source.layout())}
    shapes = dict(source.layout())
    entries = layout.entries(config)
    for name, keys, _, _ in entries:
        missing = [k for k in keys if k not in order]
        if missing:
            raise ValueError(f"--format gguf: {name} needs {missing[0]}, which --model {source.path} does not hold")
    entries.sort(key=lambda e: max(order[k] for k in e[1]))      # as soon as the .pth has given what it needs
    meta = []
    for name, keys, build, kind in entries:     # shapes, from uninitialised stand-ins (their pages are never
        shape = tuple(build([torch.empty(shapes[k]) for k in keys]).shape)       # touched; meta would be slower)
        meta.append((name, shape, stored_type(kind, dtype, shape)))
    uses: dict[str, int] = {}
    for _, keys, _, _ in entries:
        for k in keys:
            uses[k] = uses.get(k, 0) + 1
    file_type = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                 "bf16": gguf.LlamaFileType.MOSTLY_BF16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[dtype]
    tokens, types = world_tokens(config.vocab_size)
    with atomic_path(out) as tmp:
        writer = gguf.GGUFWriter(tmp, layout.ARCH)
        writer.add_type("model")
        writer.add_name(Path(source.path).stem)
        for method, value in layout.metadata(config).items():
            getattr(writer, method)(value)
        writer.add_file_type(int(file_type))
        writer.add_tokenizer_model("rwkv")
        writer.add_token_list(list(tokens))
        writer.add_token_types(list(types))
        writer.add_bos_token_id(0)
        writer.add_eos_token_id(0)
        writer.add_eot_token_id(END_OF_TURN)
        writer.add_chat_template("rwkv-world")
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        for name, shape, qtype in meta:
            writer.add_tensor_info(name, shape, np.float32, stored_bytes(qtype, shape), raw_dtype=qtype)
        writer.write_header_to_file(tmp)
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        held: dict[str, torch.Tensor] = {}
        pending = iter(zip(entries, meta))
        next_entry = next(pending, None)
        for index, (key, tensor) in enumerate(source.tensors()):
            if key in uses:
                held[key] = tensor
            while next_entry is not None and max(order[k] for k in next_entry[0][1]) <= index:
                (name, keys, build, _), (_, shape, qtype) = next_entry
                data = as_stored(build([held[k] for k in keys]), qtype)
                writer.write_tensor_data(data)
                for k in keys:
                    uses[k] -= 1
                    if uses[k] == 0:
                        del held[k]
                next_entry = next(pending, None)
        writer.close()
    return len(meta)
