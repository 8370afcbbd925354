"""Files as inputs and outputs of commands: is it the same file, may this output be written, which
file is this (a cheap fingerprint)."""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

FINGERPRINT_BYTES = 1 << 20


def same_file(a: Path, b: Path) -> bool:
    """a and b are the same file: the same path, or links to one file."""
    if Path(a).resolve() == Path(b).resolve():
        return True
    with contextlib.suppress(OSError):
        return os.path.samefile(a, b)
    return False


def check_output(path: str | Path, flag: str, inputs=(), overwrite: bool = False) -> None:
    """Before any work: the output a command will write may not be a directory, nor one of the
    command's own inputs, nor an existing file unless `overwrite`. ValueError names `flag`."""
    path = Path(path)
    for source in inputs:
        if source is not None and same_file(path, Path(source)):
            raise ValueError(f"{flag} {path} is one of this command's inputs ({source}); choose another {flag}")
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a directory; give a file path")
    if path.exists() and not overwrite:
        raise ValueError(f"{path} already exists; pass --overwrite to replace it")


def file_fingerprint(path: str | Path) -> str:
    """A cheap identity of a (large) file: sha256 of its size and its first and last MiB. Two copies of
    a checkpoint agree; another checkpoint, even of the same shapes, almost surely does not."""
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        digest.update(f.read(FINGERPRINT_BYTES))
        if size > FINGERPRINT_BYTES:
            f.seek(max(FINGERPRINT_BYTES, size - FINGERPRINT_BYTES))
            digest.update(f.read(FINGERPRINT_BYTES))
    return digest.hexdigest()[:16]


def load_tensor_file(path: Path, what: str) -> dict:
    """A .pth holding a dict of tensors (read with weights_only), or a one-line error naming `what` and the file."""
    import torch

    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what} {path} is a directory, not a .pth file")
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"cannot read {what} {path}: {(str(e).splitlines() or [''])[0]}") from None
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise ValueError(f"{what} {path} holds a {type(raw).__name__}, expected a dict of tensors")
    return raw
