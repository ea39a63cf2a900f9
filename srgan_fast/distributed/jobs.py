"""The (source, destination) pairs of a run, from paths alone: nothing is opened or decoded here.

The rules are those of a local run (``srgan_fast.io.batch``), applied over pyarrow filesystems so that a folder in
a bucket is walked as a local one is; a folder without images is a problem line, not an error.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

import pyarrow.fs as pafs

from srgan_fast.io.batch import is_hidden, is_image_name, no_images_line, output_file_refusal, output_name
from srgan_fast.distributed import storage


@dataclass(frozen=True)
class Job:
    source: str       # a local path or a URI, in the form the input was given
    destination: str  # likewise, under the output


@dataclass(frozen=True)
class Plan:
    jobs: list[Job]
    problems: list[str]  # one line per input folder without images
    output_is_file: bool


def _images_in(folder: str, output: str) -> list[str]:
    # Compared as paths under the folder's resolved place: one lookup per folder, not one per file.
    folder_place, output_place = storage.place(folder), storage.place(output)
    found = []
    for relative in storage.relative_files(folder):
        if is_hidden(PurePosixPath(relative)) or not is_image_name(PurePosixPath(relative)):
            continue
        if f"{folder_place}/{relative}".startswith(output_place + "/"):
            continue  # a first run's results
        found.append(relative)
    return sorted(found)


def _output_name(relative: str, output_suffix: str | None) -> str:
    return str(output_name(PurePosixPath(relative), output_suffix))


def collect_jobs(inputs: list[str], output: str, output_suffix: str | None = None) -> Plan:
    """Every job of a run. Raises ValueError when the output names a file that the inputs cannot go to."""
    if not inputs:
        raise ValueError("expected at least one input file or folder, got none")
    folders = [item for item in inputs if storage.file_type(item) == pafs.FileType.Directory]
    output_is_file = bool(PurePosixPath(storage.resolve(output)[1]).suffix) and \
        storage.file_type(output) != pafs.FileType.Directory
    if output_is_file:
        if len(inputs) == 1 and not folders:
            return Plan([Job(inputs[0], output)], [], True)
        raise ValueError(output_file_refusal(output, len(inputs), folders))
    jobs, problems = [], []
    for item in inputs:
        if item in folders:
            relatives = _images_in(item, output)
            if not relatives:
                problems.append(no_images_line(item))
            jobs += [Job(storage.join(item, relative), storage.join(output, _output_name(relative, output_suffix)))
                     for relative in relatives]
        else:
            name = PurePosixPath(storage.resolve(item)[1]).name
            jobs.append(Job(item, storage.join(output, _output_name(name, output_suffix))))
    return Plan(jobs, problems, False)


def existing_destinations(plan: Plan, output: str) -> set[str]:
    """The destinations already present, from one listing of the output (not one query per file)."""
    if plan.output_is_file:
        return {job.destination for job in plan.jobs if storage.file_type(job.destination) == pafs.FileType.File}
    present = {storage.join(output, relative) for relative in storage.relative_files(output)}
    return {job.destination for job in plan.jobs if job.destination in present}
