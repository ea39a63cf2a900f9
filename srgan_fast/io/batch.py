"""A batch of image files: which files a run takes, where each goes, and one file's upscale, with the rules the
local command and the Ray workers share (srgan_fast.distributed walks buckets with the same rules).

Folders are searched recursively, following links to folders but never back into one they are inside, and their
relative paths kept; a broken link or a link loop is one error line, like a missing input. With several input
folders each keeps its own name under the output folder. Hidden files and folders are skipped (this tool's own
temporary files and reports among them); the output folder is not descended into where it lies inside an input
folder (a second run must not upscale the first run's results); a source whose format cannot be written gets a
.png; one input file may name an output file, anything else needs an output folder. Every output is planned
before any work: a file reached twice (by name and inside a folder) is one job, and two inputs that would be
written to one output refuse the run.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Callable, Hashable, Iterable

from srgan_fast.io.images import READ_SUFFIXES, WRITE_FORMATS, ImageFileError, broken_link, load_image
from srgan_fast.io.save import save_image
from srgan_fast.options import format_bytes
from srgan_fast.tiler.channels import InputError

DEFAULT_NAME = "{stem}"


class OutputCollision(ValueError):
    """Two inputs of a run would be written to one output; the message names both and how to keep them apart."""


class AppearedMeanwhile(ImageFileError):
    """The destination was free when the run planned it and taken when the result was put in place; it is kept."""


def is_hidden(relative: PurePath) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def is_image_name(relative: PurePath) -> bool:
    return relative.suffix.lower() in READ_SUFFIXES


def output_name(relative: PurePath, suffix: str | None, name: str = DEFAULT_NAME) -> PurePath:
    """A source's path under the output folder: its folders, ``name`` ({stem}, {ext}: the source's name without
    its extension, and that extension) and the requested suffix, else its own where it can be written, else .png."""
    if not suffix:
        suffix = relative.suffix if relative.suffix.lower() in WRITE_FORMATS else ".png"
    return relative.with_name(name.format(stem=relative.stem, ext=relative.suffix[1:]) + suffix)


def planned_outputs(found: Iterable[tuple[object, Hashable, PurePath]], destination: Callable[[PurePath], object],
                    suffix: str | None, name: str = DEFAULT_NAME) -> tuple[list[tuple[object, object]], list[str]]:
    """(source, destination) for each distinct input file, and a note per file reached twice.

    ``found``: (source, identity, path under the output folder) in input order; sources of one identity (the
    same file named twice) run once, under the first. Raises ``OutputCollision`` when two sources map to one
    destination, naming the first such pair: whichever ran second would replace, or be refused by, the first.
    """
    jobs, notes, writer_of, seen = [], [], {}, {}
    collisions = []
    for source, identity, relative in found:
        if identity in seen:
            also = f" (also as {seen[identity]})" if str(seen[identity]) != str(source) else ""
            notes.append(f"{source}: given more than once{also}; upscaled once")
            continue
        seen[identity] = source
        target = destination(output_name(relative, suffix, name))
        if target in writer_of:
            collisions.append((writer_of[target], source, target))
            continue
        writer_of[target] = source
        jobs.append((source, target))
    if collisions:
        first, second, target = collisions[0]
        more = f" (and {len(collisions) - 1} more outputs claimed twice)" if len(collisions) > 1 else ""
        # {ext} tells apart only names that differ by their extension; one name in two folders of one name
        # stays one name whatever the template.
        if PurePath(str(first)).name != PurePath(str(second)).name:
            keep = "keep them apart with --name '{stem}_{ext}' or upscale them in separate runs"
        else:
            keep = "they have the same name, which --name cannot change: upscale them in separate runs"
        raise OutputCollision(f"{first} and {second} would both be written to {target}{more}; {keep}")
    return jobs, notes


def output_file_refusal(output: str, inputs: int, folders: list) -> str:
    """Why an output that names a file cannot take these inputs."""
    received = f"{inputs} inputs" if inputs > 1 else f"the folder {folders[0]}"
    return (f"-o {output} names a file, which takes one input file; got {received} (give an output folder: an "
            "existing one or a name without an extension)")


def no_images_line(folder) -> str:
    return (f"{folder}: no images found (looked for {', '.join(sorted(READ_SUFFIXES))}; hidden files and the "
            "output folder are skipped)")


def image_files(folder: Path, output: Path) -> tuple[list[Path], list[str], list[str]]:
    """The images under ``folder``, sorted, by the rules above, the names of the other (visible) files, and an
    error line for each entry that cannot be read through: a broken link, a folder that cannot be listed, and a
    link back to a folder it is inside (one holding ``folder``, or one on the way down to it), which is not
    followed since it would go round forever; other links to folders are followed."""
    output = output.resolve()
    found, others, problems = [], [], []
    top = os.path.realpath(folder)
    ways_down = {os.fspath(folder): (top,)}  # each folder to walk, and the real folders on the way to it
    for parent, folders, files in os.walk(folder, followlinks=True,
                                         onerror=lambda exc: problems.append(_unlistable(exc))):
        here, way_down = Path(parent), ways_down.pop(parent)
        kept = []
        for name in sorted(folders):
            path, target = here / name, os.path.realpath(os.path.join(parent, name))
            if name.startswith(".") or Path(target) == output:
                continue
            if target in way_down or top.startswith(target.rstrip(os.sep) + os.sep):
                problems.append(f"{path}: a link back to {target}, a folder it is inside; not followed (it would "
                                "go round forever)")
                continue
            ways_down[os.path.join(parent, name)] = (*way_down, target)
            kept.append(name)
        folders[:] = kept
        for name in sorted(files):
            if name.startswith("."):
                continue
            if not is_image_name(Path(name)):
                others.append(name)
            elif problem := broken_link(here / name):
                problems.append(problem)
            else:
                found.append(here / name)
    return sorted(found), others, problems


def _unlistable(exc: OSError) -> str:
    cause = "permission denied" if isinstance(exc, PermissionError) else exc.strerror or str(exc)
    return f"{exc.filename}: cannot list the folder ({cause}); its files are skipped"


def missing_line(path: Path) -> str:
    """The error line of an input that is not there: a broken link says so, and where it leads."""
    return broken_link(path) or f"{path}: no such file or folder"


def _identity(path: Path) -> Hashable:
    """The file behind a path, however it was spelled (relative, through a link, a hard link)."""
    try:
        status = path.stat()
    except OSError:
        return os.path.realpath(path)  # never raises, unlike Path.resolve() on a link loop
    return status.st_dev, status.st_ino


def _not_images_note(folder: Path, others: list[str]) -> str:
    kinds = sorted({Path(name).suffix.lower() or "no extension" for name in others})
    what = f"{len(others)} files that are not images" if len(others) > 1 else "1 file that is not an image"
    return f"{folder}: skipped {what} ({', '.join(kinds[:6])}{', ...' if len(kinds) > 6 else ''})"


@dataclass
class Batch:
    jobs: list[tuple[Path, Path]]                       # (source, destination), each destination once
    problems: list[str] = field(default_factory=list)   # error lines, each a failed input: missing, a broken link...
    notes: list[str] = field(default_factory=list)      # a file given twice, files that are not images
    output_is_file: bool = False                        # -o names the one output file, not a folder


def collect_jobs(inputs: list[str], output: str, suffix: str | None, name: str = DEFAULT_NAME) -> Batch:
    """Every job of a run, planned. Raises ValueError when the output names a file the inputs cannot go to
    (one input file may name a file: any name with an extension that is not an existing folder), and
    ``OutputCollision`` when two inputs would be written to one output."""
    out = Path(output)
    folders = [item for item in map(Path, inputs) if item.is_dir()]
    if out.suffix and not out.is_dir():
        if len(inputs) == 1 and not folders:
            source = Path(inputs[0])
            if not source.exists():
                return Batch([], [missing_line(source)], output_is_file=True)
            return Batch([(source, out)], output_is_file=True)
        raise ValueError(output_file_refusal(output, len(inputs), folders))
    batch, found = Batch([]), []
    for item in map(Path, inputs):
        if item.is_dir():
            files, others, problems = image_files(item, out)
            batch.problems += problems
            if not files:
                batch.problems.append(no_images_line(item))
            if others:
                batch.notes.append(_not_images_note(item, others))
            # With several folders each keeps its name, so that their files cannot meet under one name.
            top = PurePath(item.resolve().name) if len(folders) > 1 else PurePath()
            found += [(f, _identity(f), top / f.relative_to(item)) for f in files]
        elif item.exists():
            found.append((item, _identity(item), PurePath(item.name)))
        else:
            batch.problems.append(missing_line(item))
    batch.jobs, notes = planned_outputs(found, lambda relative: out / relative, suffix, name)
    batch.notes += notes
    return batch


@dataclass(frozen=True)
class Written:
    """What one file's upscale wrote: its warnings and its output's size, for the per-file and summary lines."""

    notes: list[str]
    output_hw: tuple[int, int]
    frames: int
    seconds: float

    @property
    def megapixels(self) -> float:
        return self.output_hw[0] * self.output_hw[1] * self.frames / 1e6


def upscale_file(upscaler, source: Path, destination: Path, *, overwrite: bool, max_pixels: int,
                 upscale=None, **save_options) -> Written:
    """One file, every frame, written atomically; never replaces a file without ``overwrite``, even one that
    appeared while this file was being upscaled. A call of its own, so that one file's pixels are freed before
    the next file is read. ``upscale(frame)``: the call that upscales each frame (default ``upscaler.upscale``);
    ``save_options``: ``save_image``'s (quality, background)."""
    started = time.perf_counter()
    if os.path.realpath(destination) == os.path.realpath(source):  # realpath: never raises on a link loop
        raise ImageFileError(f"{destination}: would overwrite its own input")
    loaded = load_image(source, max_pixels=max_pixels)
    result = loaded.with_frames([(upscale or upscaler.upscale)(frame) for frame in loaded.frames])
    del loaded  # the input's pixels are not needed while the output is encoded
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        notes = save_image(destination, result, replace=overwrite, **save_options)
    except FileExistsError:
        raise AppearedMeanwhile(f"{destination}: exists (made by something else while this run worked on it; kept, "
                                "pass --overwrite to replace it)") from None
    frame = result.frames[0]
    return Written(notes, frame.shape[:2], len(result.frames), time.perf_counter() - started)


def failure_line(source, error: Exception, memory_budget: int) -> str:
    """One line naming the file and the cause, whatever failed."""
    message = " ".join(str(error).split())
    if isinstance(error, MemoryError):
        if "--memory-budget" in message:  # the Upscaler's own, which already names the budget and what to lower
            return f"{source}: {message}"
        cause = f" ({message})" if message else ""
        return (f"{source}: out of memory{cause} with a memory budget of {format_bytes(memory_budget)}: lower it "
                "with --memory-budget or pass a smaller --tile")
    if isinstance(error, ImageFileError):
        return message  # names the file itself
    if isinstance(error, (InputError, OSError)):
        return f"{source}: {message}"
    return f"{source}: {type(error).__name__}: {message}"
