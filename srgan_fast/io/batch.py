"""A batch of image files: which files a run takes, where each goes, and one file's upscale, with the rules the
local command and the Ray workers share (srgan_fast.distributed walks buckets with the same rules).

Folders are searched recursively and their relative paths kept; hidden files and folders are skipped (this
tool's own temporary files and reports among them); the output folder is not descended into where it lies
inside an input folder (a second run must not upscale the first run's results); a source whose format cannot
be written gets a .png; one input file may name an output file, anything else needs an output folder.
"""
from __future__ import annotations

import os
from pathlib import Path, PurePath

from srgan_fast.options import format_bytes
from srgan_fast.tiler.channels import InputError
from srgan_fast.io.images import READ_SUFFIXES, WRITE_FORMATS, ImageFileError, load_image, save_image


def is_hidden(relative: PurePath) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def is_image_name(relative: PurePath) -> bool:
    return relative.suffix.lower() in READ_SUFFIXES


def output_name(relative: PurePath, suffix: str | None) -> PurePath:
    """A source's path under the output folder: its own, with the requested suffix or one that can be written."""
    if suffix:
        return relative.with_suffix(suffix)
    return relative if relative.suffix.lower() in WRITE_FORMATS else relative.with_suffix(".png")


def output_file_refusal(output: str, inputs: int, folders: list) -> str:
    """Why an output that names a file cannot take these inputs."""
    received = f"{inputs} inputs" if inputs > 1 else f"the folder {folders[0]}"
    return (f"-o {output} names a file, which takes one input file; got {received} (give an output folder: an "
            "existing one or a name without an extension)")


def no_images_line(folder) -> str:
    return (f"{folder}: no images found (looked for {', '.join(sorted(READ_SUFFIXES))}; hidden files and the "
            "output folder are skipped)")


def image_files(folder: Path, output: Path) -> list[Path]:
    """The images under ``folder``, sorted, by the rules above."""
    output = output.resolve()
    found = []
    for parent, folders, files in os.walk(folder):
        here = Path(parent)
        folders[:] = [name for name in folders if not name.startswith(".") and (here / name).resolve() != output]
        found += [here / name for name in files if not name.startswith(".") and is_image_name(Path(name))]
    return sorted(found)


def collect_jobs(inputs: list[str], output: str, suffix: str | None) -> tuple[list[tuple[Path, Path]], list[str]]:
    """(source, destination) pairs, and an error line for each input folder without images.

    One file may name a file (any name with an extension that is not an existing folder). Raises ValueError
    when the output names a file the inputs cannot go to.
    """
    out = Path(output)
    folders = [item for item in map(Path, inputs) if item.is_dir()]
    if out.suffix and not out.is_dir():
        if len(inputs) == 1 and not folders:
            return [(Path(inputs[0]), out)], []
        raise ValueError(output_file_refusal(output, len(inputs), folders))
    jobs, problems = [], []
    for item in map(Path, inputs):
        if item.is_dir():
            files = image_files(item, out)
            if not files:
                problems.append(no_images_line(item))
            jobs += [(f, out / output_name(f.relative_to(item), suffix)) for f in files]
        else:
            jobs.append((item, out / output_name(Path(item.name), suffix)))
    return jobs, problems


def upscale_file(upscaler, source: Path, destination: Path, *, overwrite: bool, max_pixels: int) -> list[str]:
    """One file, every frame, written atomically; returns the warnings. A call of its own, so that one file's
    pixels are freed before the next file is read."""
    if destination.exists() and not overwrite:
        raise ImageFileError(f"{destination}: exists (pass --overwrite to replace it)")
    if destination.resolve() == source.resolve():
        raise ImageFileError(f"{destination}: would overwrite its own input")
    loaded = load_image(source, max_pixels=max_pixels)
    result = loaded.with_frames([upscaler.upscale(frame) for frame in loaded.frames])
    destination.parent.mkdir(parents=True, exist_ok=True)
    return save_image(destination, result)


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
