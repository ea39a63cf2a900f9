"""What runs on the Ray workers: one Upscaler per actor, and each file read, upscaled and written right there.

Nothing here imports Ray, so the per-file semantics can be run and tested in a plain process.
"""
from __future__ import annotations

import inspect
import os
import tempfile
import time
from pathlib import Path

import pyarrow.fs as pafs

from srgan_fast.distributed import storage
from srgan_fast.distributed.report import DONE, FAILED, SKIPPED, FileResult
from srgan_fast.io.atomic import temporary_prefix
from srgan_fast.io.batch import failure_line
from srgan_fast.io.images import WHITE, ImageFileError, load_image
from srgan_fast.io.save import save_image

# Fault injection for the tests of worker deaths: each file in the folder this names is one death; the worker that
# removes one dies mid-write, leaving a partial temporary file as a kill does. A file that holds a name is a death
# only while writing the output of that name, so that a test can aim every death at one file whatever order Ray
# retries batches in. Unset, it costs nothing.
KILLS_ENV = "SRGAN_FAST_TEST_WORKER_KILLS"
# The columns of the rows UpscaleWorker hands back to Ray Data, one row per file.
COLUMNS = ("source", "destination", "status", "cause", "seconds", "output_megapixels", "warnings")


def _named(error: ImageFileError, local: str, location: str) -> ImageFileError:
    """The error with the staged copy's path replaced by the location the user gave."""
    return ImageFileError(str(error).replace(local, location)) if local != location else error


def die_here_if_armed(destination: str) -> None:
    kills = os.environ.get(KILLS_ENV)
    if not kills:
        return
    for kill in sorted(Path(kills).glob("*")):
        try:
            target = kill.read_text().strip()
            if target and target != Path(destination).name:
                continue
            kill.unlink()
        except FileNotFoundError:
            continue  # another worker took this one
        fd, _ = tempfile.mkstemp(dir=os.path.dirname(destination), prefix=temporary_prefix(Path(destination).name),
                                 suffix=Path(destination).suffix)
        os.write(fd, b"half an image")
        os._exit(1)


def upscale_one(upscaler, source: str, destination: str, *, overwrite: bool, resume: bool, max_pixels: int,
                quality: int | None = None, background: tuple[int, int, int] = WHITE) -> FileResult:
    """Read, upscale (every frame) and write one file as the local command does; any failure is the result."""
    started = time.perf_counter()
    try:
        if not overwrite and storage.file_type(destination) != pafs.FileType.NotFound:
            if resume:  # outputs are renamed into place whole, so one that exists is complete
                return FileResult(source, destination, SKIPPED, "exists (an earlier run or attempt wrote it)")
            raise ImageFileError(f"{destination}: exists (pass --overwrite to replace it)")
        if storage.place(destination) == storage.place(source):
            raise ImageFileError(f"{destination}: would overwrite its own input")
        with storage.local_copy(source) as local_source:
            try:
                loaded = load_image(local_source, max_pixels=max_pixels)
            except ImageFileError as error:
                raise _named(error, local_source, source) from None
        result = loaded.with_frames([upscaler.upscale(frame) for frame in loaded.frames])
        del loaded  # the input's pixels are not needed while the output is encoded
        with storage.local_target(destination) as local_destination:
            die_here_if_armed(local_destination)
            try:
                # A local destination is written in place, never replacing one that appeared since the check.
                notes = save_image(local_destination, result, replace=overwrite or storage.is_uri(destination),
                                   quality=quality, background=background)
            except FileExistsError:
                if resume:
                    return FileResult(source, destination, SKIPPED, "exists (another attempt wrote it meanwhile)")
                raise ImageFileError(f"{destination}: exists (pass --overwrite to replace it)") from None
            except ImageFileError as error:
                raise _named(error, local_destination, destination) from None
            notes = [note.replace(local_destination, destination) for note in notes]
    except Exception as error:  # noqa: BLE001 - one file's failure is its row; the batch goes on
        return FileResult(source, destination, FAILED, failure_line(source, error, upscaler.memory_budget),
                          time.perf_counter() - started)
    megapixels = sum(frame.shape[0] * frame.shape[1] for frame in result.frames) / 1e6
    return FileResult(source, destination, DONE, "", time.perf_counter() - started, megapixels, notes)


def calibrate_on_driver(model: str, backend: str, precision: str | None, calibration_images: str | None) -> None:
    """With calibration_images, build the int8 Upscaler once on the driver: a bad folder or precision is refused
    before any worker starts, and workers on this machine then read the calibrated table from its cache."""
    if calibration_images is not None:
        from srgan_fast.api import Upscaler

        Upscaler(model, backend=backend, device="cpu", precision=precision, calibration_images=calibration_images)


def make_upscaler(model: str, *, backend: str, device: str, precision: str | None, tile, memory_budget: int | None,
                  threads: int | None, calibration_images: str | None = None, **output_options):
    """The worker's Upscaler (``output_options``: tta and the output size). A thread count goes to a backend that
    takes one (native, onnxruntime); ``auto`` is resolved here for that, since the options of one candidate would
    be refused by another. calibration_images (native int8): a folder the worker can read, like the inputs; a
    worker on the machine that calibrated finds the table in its cache."""
    from srgan_fast.api import Upscaler
    from srgan_fast.backends import get_backend_class, ranked_backends

    options = {} if calibration_images is None else {"calibration_images": calibration_images}
    if threads and device == "cpu":
        name = ranked_backends("cpu")[0] if backend == "auto" else backend
        if "threads" in inspect.signature(get_backend_class(name).__init__).parameters:
            backend, options["threads"] = name, threads
    return Upscaler(model, backend=backend, device=device, precision=precision, tile=tile,
                    memory_budget=memory_budget, **output_options, **options)


def upscale_here(jobs, upscaler_options: dict, file_options: dict) -> list[FileResult]:
    """The jobs (``srgan_fast.distributed.jobs.Job``) in this process, one file after another with the same code as
    a worker, on one Upscaler whose engine takes every core, as the local command's does."""
    upscaler = make_upscaler(**{**upscaler_options, "threads": None})
    return [upscale_one(upscaler, job.source, job.destination, **file_options) for job in jobs]


def rows(results: list[FileResult]) -> dict[str, list]:
    """Results as Ray Data columns; warnings as one string each, since a column of empty lists has no type."""
    columns = {name: [getattr(result, name) for result in results] for name in COLUMNS}
    columns["warnings"] = ["\n".join(result.warnings) for result in results]
    return columns


def result_of(row: dict) -> FileResult:
    """A row of ``rows`` back as a FileResult (Ray Data may hand back numpy scalars)."""
    return FileResult(str(row["source"]), str(row["destination"]), str(row["status"]), str(row["cause"]),
                      float(row["seconds"]), float(row["output_megapixels"]),
                      [line for line in str(row["warnings"]).split("\n") if line])


class UpscaleWorker:
    """The callable class of ``map_batches``: Ray Data makes one per actor, so the model loads once per worker."""

    def __init__(self, upscaler_options: dict, file_options: dict):
        self.upscaler = make_upscaler(**upscaler_options)
        self.file_options = file_options

    def __call__(self, batch: dict) -> dict[str, list]:
        return rows([upscale_one(self.upscaler, str(source), str(destination), **self.file_options)
                     for source, destination in zip(batch["source"], batch["destination"])])
