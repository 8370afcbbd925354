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
        raise ValueError(f"cannot read {what} {path}: {unreadable_reason(path, e)}") from None
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise ValueError(f"{what} {path} holds a {type(raw).__name__}, expected a dict of tensors")
    return raw


ZIP_MAGIC = b"PK\x03\x04"          # torch.save's files are zip archives
PICKLE_PROTOCOL = b"\x80"           # a pickle (protocol >= 2), as torch.save's legacy format starts


def unreadable_reason(path: Path, error: BaseException) -> str:
    """Why torch.load could not read `path`, in words (torch's own messages say "101", "" or a page of
    advice): an empty file, not a .pth, a truncated one, or objects other than tensors."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
        size = Path(path).stat().st_size
    except OSError as e:
        return e.strerror or str(e)
    message = (str(error).splitlines() or [""])[0]
    if size == 0:
        return "empty file (0 bytes)"
    if head.startswith(ZIP_MAGIC):
        if "central directory" in message:
            return f"truncated: a zip archive without its end ({size} bytes; torch.save writes the directory last)"
        if any(sign in message for sign in ("data.pkl", "hasRecord", "not in a subdirectory", "file not found")):
            return "a zip archive, but not a torch .pth file (it lacks torch's records)"
        return f"a damaged torch .pth file ({size} bytes): {type(error).__name__}: {message}"
    if head.startswith(PICKLE_PROTOCOL):
        if isinstance(error, EOFError) or "unexpected EOF" in message:
            return f"truncated: the file ends early ({size} bytes)"
        if "Weights only" in message:
            return ("a Python pickle holding objects other than tensors, dicts and lists (not loaded: reading it "
                    "could run code)")
        return f"a damaged legacy torch file ({size} bytes): {type(error).__name__}: {message}"
    return f"not a torch .pth (zip) file: it starts with {head!r} ({size} bytes)"
