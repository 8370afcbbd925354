"""A .safetensors file written one tensor at a time: the header first (every name, dtype, shape and byte
range is known from the layout), then each tensor's bytes as it is computed, so that a model is never
held whole in memory. The format (Hugging Face safetensors): an 8-byte little-endian header length, the
JSON header ({"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [begin, end]}},
padded with spaces to a multiple of 8 bytes), then the tensors' bytes back to back, row-major.

    write_safetensors(path, layout, tensors, metadata={"format": "pt"})
        layout:  [(name, dtype, shape), ...] in the order the tensors come
        tensors: an iterable of (name, tensor) in that order
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Iterable

import torch

from ..utils.atomic import atomic_path

SAFETENSORS_DTYPES = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
                      torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
                      torch.uint8: "U8", torch.bool: "BOOL"}


def header_bytes(layout: list[tuple[str, torch.dtype, tuple]], metadata: dict[str, str]) -> bytes:
    """The length prefix and the padded JSON header of a file holding `layout`."""
    header: dict = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for name, dtype, shape in layout:
        if name in header:
            raise ValueError(f"safetensors: the name {name} appears twice")
        size = torch.Size(shape).numel() * torch.empty((), dtype=dtype).element_size()
        header[name] = {"dtype": SAFETENSORS_DTYPES[dtype], "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text


def write_safetensors(path: str | Path, layout: list[tuple[str, torch.dtype, tuple]],
                      tensors: Iterable[tuple[str, torch.Tensor]], metadata: dict[str, str] | None = None) -> None:
    """Write atomically; each tensor must come in the layout's order with the layout's dtype and shape."""
    expected = iter(layout)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(header_bytes(layout, metadata or {}))
            for name, tensor in tensors:
                want = next(expected, None)
                if want is None or want[0] != name or want[1] != tensor.dtype or tuple(want[2]) != tuple(tensor.shape):
                    raise ValueError(f"safetensors: tensor {name} {tensor.dtype} {tuple(tensor.shape)} is not the "
                                     f"layout's next entry {want}")
                data = tensor.detach().to("cpu").contiguous()
                if data.numel():
                    f.write(memoryview(data.view(torch.uint8).numpy()))       # no copy of the bytes
            missing = next(expected, None)
            if missing is not None:
                raise ValueError(f"safetensors: tensor {missing[0]} of the layout never came")
