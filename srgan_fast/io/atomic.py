"""Atomic file output: write beside the destination, rename over it only once the write has succeeded.

A crash, an exception or Ctrl-C mid-write leaves the previous file (or none) in place, never a half-written one.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from srgan_fast.io.signals import stop_signals_deferred


def _new_file_mode() -> int:
    """The mode an ordinary new file gets here (0666 less the umask); mkstemp's own 0600 would hide outputs."""
    try:
        with open("/proc/self/status") as status:  # reads the umask without changing it (thread-safe)
            mask = next(int(line.split()[1], 8) for line in status if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yields a temporary path in the destination's folder; it replaces ``path`` when the block succeeds.

    ``suffix`` lets writers that infer the format from the name (Pillow) see the right extension.
    """
    path = Path(path)
    tmp = None
    try:
        # A stop signal while the file is being created raises only once ``tmp`` names it, inside the ``try``
        # whose ``finally`` removes it.
        with stop_signals_deferred():
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
            os.close(fd)
        yield Path(tmp)
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else _new_file_mode())
        os.replace(tmp, path)
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)  # only still there when the block failed


def write_bytes_atomically(path: str | os.PathLike, data: bytes) -> None:
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
