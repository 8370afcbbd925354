"""Atomic file writes: write a temporary file beside the target, fsync, then rename over it.

A crash or a kill at any moment leaves either the old file or the new one, never half of one.
A stop that can run code (Ctrl-C, or SIGTERM turned into KeyboardInterrupt by utils/cli.py) removes the
temporary file on its way out; one left by a stop that cannot (SIGKILL) is removed, with a note on
stderr, the next time the same target is written.
New files and directories get the permissions the process umask gives (as open() and mkdir()
would), not the 0600 / 0700 of a bare mkstemp / mkdtemp. A write that fails for a reason of
the disk (full, read-only, not permitted) raises WriteError, one line naming the file.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterator

FULL_DISK_BYTES = 1 << 20          # below this much free space, a failed write is a full disk


class WriteError(OSError):
    """A file could not be written: the message names it and says why."""


def umask() -> int:
    """The process umask, read without changing it where /proc/self/status shows it."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


TEMPORARY_SUFFIX = ".tmp"
RANDOM_PART = r"[a-z0-9_]{8}"       # what mkstemp / mkdtemp put between the prefix and the suffix


def sweep_stale(directory: Path, prefix: str, suffix: str, is_dir: bool) -> None:
    """Remove what an earlier write of the same target left behind when it was killed (SIGKILL, a power
    cut: nothing could run to clean up): entries in `directory` named as that write named its temporary,
    `prefix` + mkstemp's random part + `suffix`. One line on stderr says what went."""
    pattern = re.compile(re.escape(prefix) + RANDOM_PART + re.escape(suffix))
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            if not pattern.fullmatch(entry.name) or entry.is_dir(follow_symlinks=False) != is_dir:
                continue
            with contextlib.suppress(OSError):
                if is_dir:
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
                removed.append(entry.name)
    if removed:
        target = Path(directory) / prefix[1:-1]      # the prefix is ".NAME."
        what = ("directory", "directories") if is_dir else ("file", "files")
        print(f"note: removed {len(removed)} temporary {what[len(removed) > 1]} left in {directory} by "
              f"an interrupted write of {target} ({', '.join(sorted(removed))})", file=sys.stderr)


def new_temporary_file(directory: Path, prefix: str) -> Path:
    """An empty file in `directory` with the permissions a plain open() would give it, named
    `prefix`XXXXXXXX.tmp; those an interrupted write of the same prefix left are removed first."""
    sweep_stale(Path(directory), prefix, TEMPORARY_SUFFIX, is_dir=False)
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=TEMPORARY_SUFFIX, dir=directory)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~umask())
    return Path(tmp)


def new_temporary_directory(directory: Path, prefix: str) -> Path:
    """An empty directory in `directory` with the permissions a plain mkdir() would give it, named
    `prefix`XXXXXXXX; those an interrupted write of the same prefix left are removed first."""
    sweep_stale(Path(directory), prefix, "", is_dir=True)
    tmp = tempfile.mkdtemp(prefix=prefix, dir=directory)
    os.chmod(tmp, 0o777 & ~umask())
    return Path(tmp)


def failure_reason(error: BaseException, directory: Path) -> str | None:
    """Why a write into `directory` failed, in words, when the reason is the disk's: the system's
    message for an OSError, or "no space left on device" when the disk is full (torch.save
    reports that as a RuntimeError). None: the failure is not the disk's."""
    if isinstance(error, WriteError):
        return None
    if isinstance(error, OSError) and error.errno:
        reason = os.strerror(error.errno)
        return reason[:1].lower() + reason[1:]
    with contextlib.suppress(OSError):
        if shutil.disk_usage(directory).free < FULL_DISK_BYTES:
            return "no space left on device"
    return None


@contextlib.contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Turn a failure of the disk while writing `path` into a WriteError naming it."""
    path = Path(path)
    try:
        yield
    except Exception as e:
        directory = path.parent if path.parent.exists() else Path(".")
        reason = failure_reason(e, directory)
        if reason is None:
            raise
        raise WriteError(f"cannot write {path}: {reason}") from e


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's directory; on success rename it onto `path`."""
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = new_temporary_file(path.parent, f".{path.name}.")
        try:
            yield tmp
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
            with contextlib.suppress(OSError):       # make the rename itself durable
                dir_fd = os.open(path.parent, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    with atomic_path(path) as tmp:
        write(tmp)


def atomic_torch_save(obj, path: str | Path) -> None:
    import torch                     # here, not at the top: commands that never save tensors start faster
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_save_png(fig, path: str | Path, dpi: int = 100) -> None:
    """A matplotlib figure as a PNG (the format named: the temporary file's suffix is .tmp)."""
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
