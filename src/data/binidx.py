"""RWKV-LM's binidx token files (Megatron's "MMIDIDX" memory-mapped indexed dataset).

    PREFIX.bin  the tokens, uint16 for the 65536-token World vocabulary, item after item
    PREFIX.idx  b"MMIDIDX\\x00\\x00", version (<Q, 1), dtype code (<B), item count (<Q),
                document-index count (<Q), sizes (int32, one per item), pointers (int64,
                byte offset of each item), doc_idx (int64, first item of each document, then
                the item count)

RWKV-LM's make_data.py writes one item per document, each ending with token 0. Our
supervised data writes two items per document: the prompt, then the response (ending
with 0), so the loss mask can be recovered; to RWKV-LM's reader it is the same stream.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..utils.atomic import new_temporary_file, writing

MAGIC = b"MMIDIDX\x00\x00"
DTYPES = {1: np.uint8, 2: np.int8, 3: np.int16, 4: np.int32, 5: np.int64, 6: np.float64, 7: np.double, 8: np.uint16}
CODES = {np.dtype(np.uint16): 8, np.dtype(np.int32): 4, np.dtype(np.int64): 5}


class BinIdx:
    """Read-only, memory-mapped view of PREFIX.bin / PREFIX.idx."""

    def __init__(self, prefix: str | os.PathLike):
        self.prefix = str(prefix)
        idx_path, bin_path = Path(self.prefix + ".idx"), Path(self.prefix + ".bin")
        for p in (idx_path, bin_path):
            if p.is_dir():
                raise ValueError(f"binidx data {self.prefix}: {p} is a directory, not a file")
            if not p.is_file():
                raise FileNotFoundError(f"binidx data {self.prefix}: {p} does not exist")
        with open(idx_path, "rb") as f:
            header = f.read(9 + 8 + 1 + 8 + 8)
        if header[:len(MAGIC)] != MAGIC[:len(header)] or len(header) == 0:
            raise ValueError(f"{idx_path} is not an MMIDIDX index (bad magic bytes)")
        if len(header) < 34:
            raise ValueError(f"{idx_path} has {len(header)} bytes, fewer than its 34-byte header: the file is truncated")
        (version,) = struct.unpack("<Q", header[9:17])
        (code,) = struct.unpack("<B", header[17:18])
        n_items, n_doc_idx = struct.unpack("<QQ", header[18:34])
        if version != 1:
            raise ValueError(f"{idx_path}: index version {version}, expected 1")
        if code not in DTYPES:
            raise ValueError(f"{idx_path}: unknown token dtype code {code}")
        self.dtype = np.dtype(DTYPES[code])
        if self.dtype.kind not in "iu":
            raise ValueError(f"{idx_path}: its header gives the tokens of {bin_path} the dtype {self.dtype.name} "
                             f"(code {code}), not an integer type: token files hold integers (uint16, int32, int64)")
        expected_size = 34 + n_items * 4 + n_items * 8 + n_doc_idx * 8
        if idx_path.stat().st_size != expected_size:
            raise ValueError(f"{idx_path} has {idx_path.stat().st_size} bytes, its header says {expected_size}: "
                             f"the file is truncated or corrupt")
        index = np.memmap(idx_path, mode="r", dtype=np.uint8)
        self.sizes = np.frombuffer(index, dtype=np.int32, count=n_items, offset=34)
        self.pointers = np.frombuffer(index, dtype=np.int64, count=n_items, offset=34 + n_items * 4)
        self.doc_idx = np.frombuffer(index, dtype=np.int64, count=n_doc_idx, offset=34 + n_items * 12)
        if np.any(self.sizes < 0):
            i = int(np.argmax(self.sizes < 0))
            raise ValueError(f"{idx_path}: item {i} has the negative size {int(self.sizes[i])}: the index is corrupt")
        n_tokens = int(self.sizes.astype(np.int64).sum())
        if bin_path.stat().st_size != n_tokens * self.dtype.itemsize:
            raise ValueError(f"{bin_path} has {bin_path.stat().st_size} bytes but {idx_path} describes "
                             f"{n_tokens} tokens of {self.dtype.itemsize} bytes: .bin and .idx disagree")
        if n_doc_idx < 1 or self.doc_idx[0] != 0 or self.doc_idx[-1] != n_items or np.any(np.diff(self.doc_idx) < 0):
            raise ValueError(f"{idx_path}: its document index is not a non-decreasing list from 0 to {n_items}")
        ends = self.pointers + self.sizes.astype(np.int64) * self.dtype.itemsize
        bad = (self.pointers < 0) | (self.pointers % self.dtype.itemsize != 0) | (ends > bin_path.stat().st_size)
        if np.any(bad):
            i = int(np.argmax(bad))
            raise ValueError(f"{idx_path}: item {i} points at byte {int(self.pointers[i])} for {int(self.sizes[i])} "
                             f"tokens, outside {bin_path} ({bin_path.stat().st_size} bytes): the index is corrupt")
        self.tokens = np.memmap(bin_path, mode="r", dtype=self.dtype) if n_tokens else np.zeros(0, self.dtype)

    @property
    def num_tokens(self) -> int:
        return len(self.tokens)

    @property
    def num_documents(self) -> int:
        return len(self.doc_idx) - 1

    def item(self, i: int) -> np.ndarray:
        start = int(self.pointers[i]) // self.dtype.itemsize
        return self.tokens[start:start + int(self.sizes[i])]

    def document_items(self, d: int) -> list[np.ndarray]:
        return [self.item(i) for i in range(int(self.doc_idx[d]), int(self.doc_idx[d + 1]))]

    def document(self, d: int) -> np.ndarray:
        items = self.document_items(d)
        return np.concatenate(items) if items else np.zeros(0, self.dtype)

    def check_vocabulary(self, vocab_size: int, what: str | None = None) -> None:
        """Every token id in 0..vocab_size-1, or a ValueError naming `what` (default: the prefix), the
        offending id (the lowest below 0, else the highest) and the vocabulary. The tokens are read only
        when their type could hold one outside it (a signed type: below 0; a wide one: too high)."""
        if not self.num_tokens:
            return
        bad = None                                                   # integer types only (see __init__)
        if np.iinfo(self.dtype).min < 0:
            lowest = self.tokens.min()
            bad = lowest if lowest < 0 else None
        if bad is None and np.iinfo(self.dtype).max >= vocab_size:
            highest = self.tokens.max()
            bad = highest if highest >= vocab_size else None
        if bad is not None:
            raise ValueError(f"{what or self.prefix} holds token {int(bad)}, but the model's vocabulary has "
                             f"{vocab_size} tokens (0..{vocab_size - 1})")

    def window(self, offset: int, length: int) -> np.ndarray:
        """length tokens of the flat stream from offset (across document boundaries)."""
        return self.tokens[offset:offset + length]


class BinIdxWriter:
    """Write PREFIX.bin / PREFIX.idx. Both are written to temporary files beside the targets and
    renamed into place only when `close()` succeeds; an error inside the `with` block removes
    everything written, so no half-written data set is ever left behind."""

    def __init__(self, prefix: str | os.PathLike, dtype=np.uint16):
        self.prefix = str(prefix)
        self.dtype = np.dtype(dtype)
        directory = Path(self.prefix).parent
        name = Path(self.prefix).name
        self._tmp: dict[str, Path] = {}
        self._bin = None
        with writing(self.prefix + ".bin"):
            directory.mkdir(parents=True, exist_ok=True)
            for ext in (".bin", ".idx"):
                self._tmp[ext] = new_temporary_file(directory, f".{name}{ext}.")
            self._bin = open(self._tmp[".bin"], "wb")
        self.sizes: list[int] = []
        self.doc_idx: list[int] = [0]

    def add_document(self, items: Sequence[Iterable[int]]) -> None:
        """One document made of one or more items (each a sequence of token ids)."""
        for item in items:
            array = np.asarray(item, dtype=np.int64)
            if array.size and (array.min() < 0 or array.max() > np.iinfo(self.dtype).max):
                raise ValueError(f"token ids must fit {self.dtype} (0..{np.iinfo(self.dtype).max}), "
                                 f"got {array.min()}..{array.max()}")
            with writing(self.prefix + ".bin"):
                self._bin.write(array.astype(self.dtype).tobytes(order="C"))
            self.sizes.append(int(array.size))
        self.doc_idx.append(len(self.sizes))

    def close(self) -> None:
        with writing(self.prefix + ".bin"):
            self._close()

    def _close(self) -> None:
        self._bin.flush()
        os.fsync(self._bin.fileno())
        self._bin.close()
        sizes = np.asarray(self.sizes, dtype=np.int32)
        pointers = (np.cumsum(sizes.astype(np.int64)) - sizes) * self.dtype.itemsize
        with open(self._tmp[".idx"], "wb") as f:
            f.write(MAGIC)
            f.write(struct.pack("<QBQQ", 1, CODES[self.dtype], len(sizes), len(self.doc_idx)))
            f.write(sizes.tobytes(order="C"))
            f.write(pointers.astype(np.int64).tobytes(order="C"))
            f.write(np.asarray(self.doc_idx, dtype=np.int64).tobytes(order="C"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(self._tmp[".bin"], self.prefix + ".bin")
        os.replace(self._tmp[".idx"], self.prefix + ".idx")

    def abort(self) -> None:
        if self._bin is not None:
            self._bin.close()
        for tmp in self._tmp.values():
            tmp.unlink(missing_ok=True)

    def __enter__(self) -> "BinIdxWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
