"""The (source, destination) pairs of a run, from paths alone: nothing is opened or decoded here.

The rules are those of a local run (``srgan_fast.io.batch``: its ``planned_outputs`` names, deduplicates and
refuses collisions for both), applied over pyarrow filesystems so that a folder in a bucket is walked as a local
one is; a folder without images is a problem line, not an error.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath

import pyarrow.fs as pafs

from srgan_fast.io.batch import (DEFAULT_NAME, OutputCollision, is_hidden, is_image_name, no_images_line,
                                 output_file_refusal, output_name, planned_outputs)
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
    notes: list[str] = field(default_factory=list)  # a file given twice: upscaled once


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


def collect_jobs(inputs: list[str], output: str, output_suffix: str | None = None, name: str = DEFAULT_NAME) -> Plan:
    """Every job of a run, planned as locally (``planned_outputs``). Raises ValueError when the output names a file
    that the inputs cannot go to, ``OutputCollision`` when two inputs would be written to one output."""
    if not inputs:
        raise ValueError("expected at least one input file or folder, got none")
    folders = [item for item in inputs if storage.file_type(item) == pafs.FileType.Directory]
    output_is_file = bool(PurePosixPath(storage.resolve(output)[1]).suffix) and \
        storage.file_type(output) != pafs.FileType.Directory
    if output_is_file:
        if len(inputs) == 1 and not folders:
            return Plan([Job(inputs[0], output)], [], True)
        raise ValueError(output_file_refusal(output, len(inputs), folders))
    found, problems, named = [], [], {}
    for item in inputs:
        if item in folders:
            relatives = _images_in(item, output)
            if not relatives:
                problems.append(no_images_line(item))
            top = PurePosixPath(PurePosixPath(storage.place(item)).name) if len(folders) > 1 else PurePosixPath()
            _refuse_same_named_folders(named, item, top, relatives, output, output_suffix, name)
            found += [(storage.join(item, relative), storage.place(storage.join(item, relative)), top / relative)
                      for relative in relatives]
        else:
            found.append((item, storage.place(item), PurePosixPath(PurePosixPath(storage.resolve(item)[1]).name)))
    pairs, notes = planned_outputs(found, lambda relative: storage.join(output, str(relative)), output_suffix, name)
    return Plan([Job(source, destination) for source, destination in pairs], problems, False, notes)


def _refuse_same_named_folders(named: dict, folder: str, top: PurePosixPath, relatives: list[str], output: str,
                               output_suffix: str | None, name: str) -> None:
    """Two input folders of one name that hold a file of the same relative path: both would be written to one
    output whatever ``--name`` says (each folder keeps its name under the output), so the refusal says what does
    keep them apart. ``named``: the folders seen so far by name (the same folder given twice is not two)."""
    if top == PurePosixPath():
        return
    for other, other_relatives in named.get(top, []):
        shared = sorted(set(relatives) & other_relatives)
        if shared and storage.place(other) != storage.place(folder):
            target = storage.join(output, str(output_name(top / shared[0], output_suffix, name)))
            raise OutputCollision(
                f"{storage.join(other, shared[0])} and {storage.join(folder, shared[0])} would both be written to "
                f"{target}: the folders {other} and {folder} have the same name, which each keeps under the output "
                "(--name cannot change it); upscale them in separate runs")
    named.setdefault(top, []).append((folder, set(relatives)))


def existing_destinations(plan: Plan, output: str) -> set[str]:
    """The destinations already present, from one listing of the output (not one query per file)."""
    if plan.output_is_file:
        return {job.destination for job in plan.jobs if storage.file_type(job.destination) == pafs.FileType.File}
    present = {storage.join(output, relative) for relative in storage.relative_files(output)}
    return {job.destination for job in plan.jobs if job.destination in present}
