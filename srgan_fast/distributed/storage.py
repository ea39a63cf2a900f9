"""Where inputs and outputs live: local paths (a shared mount on a cluster) or any URI pyarrow.fs opens (s3://,
gs://, abfs://, hdfs://).

Local files are read and written in place, so that writes are atomic through ``save_image``'s rename. Remote
objects are staged: an input is copied to a local scratch file before decoding, and an output is encoded into a
local scratch file and copied up whole once complete; object stores make an object visible only when its upload
completes, so a worker that dies mid-file leaves no partial object either.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Iterator

import pyarrow.fs as pafs

from srgan_fast.io.atomic import own_temporaries


def is_uri(location: str) -> bool:
    return "://" in location


def as_given(location: str) -> str:
    """A file:// URI as its local path, so that it is written in place (atomically) rather than staged."""
    return location[len("file://"):] if location.startswith("file://") else location


def resolve(location: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem holding ``location`` and its path there (absolute for local paths)."""
    if is_uri(location):
        return pafs.FileSystem.from_uri(location)
    return pafs.LocalFileSystem(), os.path.abspath(location)


def join(location: str, relative: str) -> str:
    """``relative`` (a POSIX path) under the folder ``location``, in the form ``location`` was given."""
    if is_uri(location):
        return location.rstrip("/") + "/" + relative
    return str(Path(location, *PurePosixPath(relative).parts))


def file_type(location: str) -> pafs.FileType:
    filesystem, path = resolve(location)
    return filesystem.get_file_info(path).type


def relative_files(location: str) -> list[str]:
    """Every file under the folder ``location``, as POSIX paths relative to it; none if it does not exist."""
    filesystem, base = resolve(location)
    selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
    base = base.rstrip("/")
    return [info.path[len(base) + 1:] for info in filesystem.get_file_info(selector)
            if info.type == pafs.FileType.File]


def place(location: str) -> str:
    """A key that is equal for two locations naming the same path (local ones after following links)."""
    if is_uri(location):
        filesystem, path = resolve(location)
        return f"{filesystem.type_name}:{path.rstrip('/')}"
    return os.path.realpath(location)


@contextlib.contextmanager
def local_copy(source: str) -> Iterator[str]:
    """A local path holding ``source``'s bytes: the file itself when local, a scratch copy otherwise."""
    if not is_uri(source):
        yield source
        return
    filesystem, path = resolve(source)
    with tempfile.TemporaryDirectory(prefix="srgan-fast-in-") as scratch:
        local = os.path.join(scratch, PurePosixPath(path).name)
        with filesystem.open_input_stream(path) as remote, open(local, "wb") as file:
            shutil.copyfileobj(remote, file)
        yield local


@contextlib.contextmanager
def local_target(destination: str) -> Iterator[str]:
    """A local path to write ``destination`` to; a remote destination gets the file once the block succeeds."""
    if not is_uri(destination):
        Path(destination).parent.mkdir(parents=True, exist_ok=True)
        yield destination
        return
    filesystem, path = resolve(destination)
    with tempfile.TemporaryDirectory(prefix="srgan-fast-out-") as scratch:
        local = os.path.join(scratch, PurePosixPath(path).name)
        yield local
        filesystem.create_dir(str(PurePosixPath(path).parent), recursive=True)
        pafs.copy_files(local, path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=filesystem)


def remove_abandoned_temporaries(destinations: list[str]) -> list[str]:
    """Delete the temporary files that a killed writer left beside these local destinations; returns them.

    ``save_image`` writes ``.{name}.srgan-fast-{pid}.XXXXXXXX{suffix}`` beside each output and renames it into
    place; only a process killed mid-write (no ``finally`` runs) leaves one behind. Call this when no run is
    writing these destinations any more: the temporary file of a live writer looks the same.
    """
    names_by_folder: dict[str, set[str]] = {}
    for destination in destinations:
        if not is_uri(destination):
            path = Path(destination)
            names_by_folder.setdefault(str(path.parent), set()).add(path.name)
    removed = []
    for folder, names in names_by_folder.items():
        for entry, match in own_temporaries(folder):  # none in a folder never created: nothing was written there
            if match["name"] in names:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed.append(entry.path)
    return removed
