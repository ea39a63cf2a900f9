"""Atomic file output: write beside the destination, rename over it only once the write has succeeded.

A crash, an exception or Ctrl-C mid-write leaves the previous file (or none) in place, never a half-written one.
With ``replace=False`` the file is put in place only if none is there at that moment, in one step of the file
system: a check for the destination followed by a rename would replace a file that appeared in between.

Temporary names carry this tool's mark and the writer's pid (``temporary_prefix``), so that what a killed
run left behind is told apart from anyone else's hidden files and from a live run's file in flight:
``remove_stale_temporaries`` removes those alone.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from srgan_fast.io.signals import stop_signals_deferred


# ".{name}.srgan-fast-{pid}." + 8 random characters (mkstemp's, or hex for video) + a suffix: the name's own
# (images, so that Pillow sees the format), ".tmp" (atomic_output's default) or ".partial" (video).
TEMPORARY_NAME = re.compile(r"\.(?P<name>.+)\.srgan-fast-(?P<pid>\d+)\.[a-z0-9_]{8}(?P<suffix>\.[A-Za-z0-9]+)?")
_OWN_SUFFIXES = (".tmp", ".partial")


def temporary_prefix(name: str) -> str:
    """The start of the hidden name this process writes ``name`` under before renaming it into place."""
    return f".{name}.srgan-fast-{os.getpid()}."


def process_alive(pid: int) -> bool:
    """Whether a process of this pid runs on this machine (another user's counts): a temporary whose writer is
    gone may be removed."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def own_temporaries(folder: str | os.PathLike) -> Iterator[tuple[os.DirEntry, re.Match]]:
    """The regular files directly in ``folder`` named as this tool's temporaries (``TEMPORARY_NAME`` with a
    suffix it uses), each with its name's match (``name``: the destination's, ``pid``: the writer's). None for
    a folder that does not exist or cannot be read."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        match = TEMPORARY_NAME.fullmatch(entry.name)
        if match is None or (match["suffix"] or "") not in (Path(match["name"]).suffix, *_OWN_SUFFIXES):
            continue
        with contextlib.suppress(OSError):
            if entry.is_file(follow_symlinks=False):
                yield entry, match


def remove_stale_temporaries(folders: Iterable[str | os.PathLike], started: float) -> list[Path]:
    """Remove, directly in each folder, the temporary files of this tool that a killed run left: its own
    (``own_temporaries``), last modified before ``started`` (a time.time() value: this run's start), written by
    a process that is gone (never this one, nor a live run in the same folder). Returns what was removed."""
    removed = []
    for folder in dict.fromkeys(Path(f) for f in folders):
        for entry, match in own_temporaries(folder):
            pid = int(match["pid"])
            try:
                stale = entry.stat(follow_symlinks=False).st_mtime < started
            except OSError:
                continue
            if stale and pid != os.getpid() and not process_alive(pid):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


def _new_file_mode() -> int:
    """The mode an ordinary new file gets here (0666 less the umask); mkstemp's own 0600 would hide outputs."""
    try:
        with open("/proc/self/status") as status:  # reads the umask without changing it (thread-safe)
            mask = next(int(line.split()[1], 8) for line in status if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


# Where a file system has no hard links (FAT, some network and FUSE mounts), Linux's renameat2 with this flag
# does the same no-replace move.
_RENAME_NOREPLACE = 1
_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK}


def _rename_no_replace(tmp: str, path: Path) -> None:
    if os.name == "nt":
        os.rename(tmp, path)  # Windows' rename never replaces an existing file
        return
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    at_cwd = -100
    if renameat2 is None or renameat2(at_cwd, os.fsencode(tmp), at_cwd, os.fsencode(path), _RENAME_NOREPLACE):
        code = ctypes.get_errno() if renameat2 is not None else errno.ENOTSUP
        if code == errno.EEXIST:
            raise FileExistsError(code, os.strerror(code), str(path))
        raise OSError(code, f"{os.strerror(code)}: this file system cannot put a file in place without replacing "
                      "one that may be there (pass --overwrite to allow replacing)", str(path))


def place_without_replacing(tmp: str, path: Path) -> None:
    """Gives the finished ``tmp`` the name ``path`` unless a file has that name; ``FileExistsError`` if one has.

    A hard link fails atomically where the name is taken; the temporary name is removed by the caller after.
    """
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in _NO_LINKS:
            raise
        _rename_no_replace(tmp, path)


@contextlib.contextmanager
def _temporary_then_rename(path: Path, suffix: str, replace: bool) -> Iterator[Path]:
    tmp = None
    try:  # entered with stop signals deferred (atomic_output.__enter__), so one comes once ``tmp`` names the file
        try:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temporary_prefix(path.name), suffix=suffix)
        except OSError as exc:  # named by the destination: the temporary name means nothing to the user
            raise type(exc)(exc.errno, exc.strerror, str(path)) from None
        os.close(fd)
        yield Path(tmp)
        if replace:
            os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else _new_file_mode())
            os.replace(tmp, path)
        else:
            os.chmod(tmp, _new_file_mode())
            place_without_replacing(tmp, path)
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)  # still there when the block failed, or after a hard link


class atomic_output:  # noqa: N801 - used as a function: ``with atomic_output(path) as tmp``
    """A temporary path in the destination's folder, which becomes ``path`` when the ``with`` block succeeds.

    ``suffix`` lets writers that infer the format from the name (Pillow) see the right extension.
    ``replace=False``: ``FileExistsError`` instead where ``path`` exists when the write is done.
    """

    def __init__(self, path: str | os.PathLike, suffix: str = ".tmp", replace: bool = True):
        self._steps = _temporary_then_rename(Path(path), suffix, replace)

    def __enter__(self) -> Path:
        # Python raises a signal's exception when a call returns: a stop signal caught while the temporary is
        # made, or after it exists but before ``with`` has entered its block, would skip __exit__ and leave the
        # file behind, so it waits until then, and if it comes the temporary is removed here.
        entered = False
        try:
            with stop_signals_deferred():
                tmp = self._steps.__enter__()
                entered = True
            return tmp
        except BaseException as exc:
            if entered:
                self._steps.__exit__(type(exc), exc, exc.__traceback__)
            raise

    def __exit__(self, *exc_info) -> bool:
        return bool(self._steps.__exit__(*exc_info))


def write_bytes_atomically(path: str | os.PathLike, data: bytes) -> None:
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
