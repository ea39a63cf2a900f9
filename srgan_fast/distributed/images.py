"""Folders of images across a Ray cluster: a Ray Data dataset of paths, mapped by a pool of Upscaler actors.

Without a cluster to use, a run is not sent to a Ray instance started on this machine for it: that would add Ray's
start-up and no cores, since the local engine already runs on every core (on a 2-core AMD EPYC, Zen 4: one worker
on one thread took 1.55 s an image of 256x256, one engine on both 0.82 s, and Ray's import, start, actors and
shutdown about 10 s on top; README, Many machines). It runs in this process instead, with the workers' per-file
code, report and resume rules (``RAN_HERE`` says so).
"""
from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from typing import Iterator

from srgan_fast.distributed import storage
from srgan_fast.distributed.cluster import (check_worker_options, cluster_capacity, import_ray, ray_connected,
                                            starts_ray_here)
from srgan_fast.distributed.jobs import Job, collect_jobs, existing_destinations
from srgan_fast.distributed.report import FAILED, SKIPPED, FileResult, RunSummary, default_report_location, write_report
from srgan_fast.distributed.worker import UpscaleWorker, calibrate_on_driver, result_of, upscale_here
from srgan_fast.io.batch import DEFAULT_NAME
from srgan_fast.io.images import DEFAULT_MAX_PIXELS, WHITE
from srgan_fast.weights import DEFAULT_MODEL, resolve_weights_path

# Attempts of a batch beyond the first when its worker dies (killed, out of memory, node lost). Bounded, so that a
# file that kills every worker that reads it (a decoder crash) ends as a failed row instead of looping forever.
WORKER_DEATH_RETRIES = 3
# Ray Data keeps a little state per block; past this many, batches share blocks (and a retry redoes a block).
MAX_BLOCKS = 10_000
RAN_HERE = ("ran in this process, not on Ray: with no cluster to use (no address, no RAY_ADDRESS) Ray would start "
            "on this machine for this run alone, adding its start-up and no cores; --ray local (address 'local') "
            "runs it on Ray anyway")


@contextlib.contextmanager
def _data_context(ray, quiet: bool) -> Iterator[None]:
    """Datasets copy the current DataContext when they are made; the settings are restored for the caller after.
    quiet: Ray Data's progress, INFO and warning lines are kept off the console (its log files keep them)."""
    context = ray.data.DataContext.get_current()
    saved = context.max_errored_blocks, context.enable_progress_bars
    consoles = [handler for handler in logging.getLogger("ray.data").handlers if quiet and
                isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)]
    levels = [handler.level for handler in consoles]
    # A block only fails when its worker died on every attempt (each file's own failure is a row): go on with
    # the others, and report that block's files as failed.
    context.max_errored_blocks = -1
    context.enable_progress_bars = context.enable_progress_bars and not quiet
    for handler in consoles:
        handler.setLevel(max(handler.level, logging.ERROR))
    try:
        yield
    finally:
        context.max_errored_blocks, context.enable_progress_bars = saved
        for handler, level in zip(consoles, levels):
            handler.setLevel(level)


def _pool_size(ray, workers: int | None, gpus_per_worker: float, threads_per_worker: int, batches: int):
    """A pool of ``workers`` actors, or of as many as the cluster has room for now; never more than batches.

    One task in flight per actor: the tasks queued on an actor fail with it when it dies, each using up one of
    its retries, so with more a batch that kills its worker every time would take the batches queued behind it
    down too (reported failed though their files were fine). A batch is seconds of work; dispatching the next
    one after it costs milliseconds. The pool is fixed in size, started whole: Ray Data's autoscaler grows a pool
    only while its actors have more tasks queued than they run, which never happens with one in flight each (a
    pool from 1 to N stayed at 1 actor)."""
    if workers is None:
        workers = cluster_capacity(ray, gpus_per_worker, threads_per_worker)
    return ray.data.ActorPoolStrategy(size=max(1, min(workers, batches)), max_tasks_in_flight_per_actor=1)


def _check_options(workers, gpus_per_worker, threads_per_worker, files_per_batch) -> None:
    check_worker_options(workers, gpus_per_worker, threads_per_worker)
    if not isinstance(files_per_batch, int) or files_per_batch < 1:
        raise ValueError(f"files_per_batch must be a positive number of files, got {files_per_batch!r}")


def _decided_on_driver(jobs: list[Job], existing: set[str], overwrite: bool,
                       resume: bool) -> tuple[list[Job], list[FileResult]]:
    """The jobs to send, and the results known from the paths alone: the existing outputs."""
    pending, known = [], []
    for job in jobs:
        if job.destination in existing and not overwrite:
            known.append(FileResult(job.source, job.destination, SKIPPED, "exists (an earlier run wrote it)")
                         if resume else FileResult(job.source, job.destination, FAILED,
                                                   f"{job.destination}: exists (pass --overwrite to replace it)"))
        else:
            pending.append(job)
    return pending, known


def _run_on_ray(ray, pending: list[Job], upscaler_options: dict, file_options: dict, *, workers, gpus_per_worker,
                threads_per_worker: int, files_per_batch: int) -> list[FileResult]:
    batches = math.ceil(len(pending) / files_per_batch)
    dataset = ray.data.from_items([{"source": job.source, "destination": job.destination} for job in pending],
                                  override_num_blocks=min(batches, MAX_BLOCKS))
    resources = ({"num_gpus": gpus_per_worker, "num_cpus": 1} if gpus_per_worker
                 else {"num_cpus": threads_per_worker})
    with warnings.catch_warnings():
        # Ray 2.60 deprecates remote arguments without a named replacement for this one; Ray Data's default,
        # retrying without limit, would let one file that kills every worker reading it hold the run forever.
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
        results = dataset.map_batches(
            UpscaleWorker, fn_constructor_kwargs={"upscaler_options": upscaler_options, "file_options": file_options},
            batch_size=files_per_batch, compute=_pool_size(ray, workers, gpus_per_worker, threads_per_worker, batches),
            # Ray Data restarts a dead actor (which loads its model again) and sends it the batch it died in.
            max_task_retries=WORKER_DEATH_RETRIES, **resources)
    rows = iter(results.iter_rows())
    try:
        return [result_of(row) for row in rows]
    finally:
        # On a stop signal the exception's traceback would keep this generator, and so Ray Data's executor
        # threads, alive past ray.shutdown(), where they fail on objects Ray no longer knows and print it after
        # the stop line; closing it here shuts the executor down first (Ray Data's _on_iteration_end).
        rows.close()


def upscale_files(inputs: list[str], output: str, *, address: str | None = None, model: str = DEFAULT_MODEL,
                  backend: str = "auto", precision: str | None = None, tile=None, memory_budget: int | None = None,
                  output_format: str | None = None, workers: int | None = None, gpus_per_worker: float = 0,
                  threads_per_worker: int | None = None, files_per_batch: int = 1, overwrite: bool = False,
                  resume: bool = True, report: str | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
                  tta: bool = False, outscale: float | None = None, width: int | None = None,
                  height: int | None = None, name: str = DEFAULT_NAME, quality: int | None = None,
                  background: tuple[int, int, int] = WHITE, calibration_images: str | None = None,
                  quiet: bool = False) -> RunSummary:
    """Upscale image files and folders on a Ray cluster, as ``srgan-fast upscale`` does on one machine.

    inputs, output: local paths (on a cluster, a mount every node shares) or URIs pyarrow.fs opens (s3://,
        gs://, abfs://). Folders, relative paths, hidden files and the output folder are treated as locally
        (see ``srgan_fast.distributed.jobs``). The driver only lists paths; workers read, upscale and write.
    address: the Ray cluster ("auto", "ray://head:10001", "local": a Ray instance started on this machine for the
        run); None: the one this process is connected to, else RAY_ADDRESS, else no Ray: the files run in this
        process, on every core, as a local instance's workers would run them minus Ray's start-up (a note in the
        summary says so), unless ``workers``, ``threads_per_worker`` or ``gpus_per_worker`` size the workers.
        Every node needs srgan_fast installed and ``model`` readable.
    model, backend, precision, tile, memory_budget: as for ``Upscaler``, one per worker.
    output_format: "png", ".webp", ...: the outputs' format (default: the input's, or PNG where not writable).
    name: the outputs' names without extension, from {stem} and {ext} (see ``srgan_fast.io.batch.output_name``).
    calibration_images: native int8 of a model that ships no table: a folder of sample images, calibrated from
        once on the driver (refused there on one line if unusable), then read by the workers, as the inputs are.
    quality, background: JPEG/WebP quality and the colour alpha is laid over in formats without it (``save_image``).
    workers: the number of actors; None: as many as the cluster's free CPUs (or GPUs) hold when the run starts
        (``threads_per_worker`` CPUs, or ``gpus_per_worker`` GPUs, each); never more than there are batches.
    gpus_per_worker: GPUs each actor reserves (0.5 puts two on a GPU); 0: CPU workers.
    threads_per_worker: CPUs a CPU actor reserves and the native engine's threads (default 1: one worker per
        core is the fastest way through many files).
    files_per_batch: files per Ray task; a worker that dies redoes its batch.
    overwrite: replace existing outputs. Otherwise, with ``resume`` (the default), an existing output counts as
        done and is skipped: outputs are written to a temporary file and renamed into place whole, so one that
        exists is complete, and a run that was stopped is finished by running it again. ``resume=False``
        reports each existing output as failed, as the local command does.
    report: where to write the JSON-lines report (default: ``.srgan-fast-report.jsonl`` in the output folder,
        or beside an output file); one line per file: source, destination, status (done, skipped, failed),
        cause, seconds, output_megapixels, warnings. Written whole at the end.
    max_pixels: inputs above this are refused (as ``load_image``).
    tta, outscale, width, height: self-ensemble and the output size, as for ``Upscaler``.
    quiet: Ray's own lines (its start, progress, INFO logs, the workers' output) stay off the console.

    Failures: a file that cannot be read, is too large or runs out of memory is one failed result with its
    cause; the others go on. A worker that dies mid-file is restarted and its batch retried by Ray (up to
    ``WORKER_DEATH_RETRIES`` times, then its files are failed results); the temporary files killed workers
    leave are removed at the end of the run, so no half-written file remains. One run per output at a time.
    Two inputs that would be written to one output refuse the run before anything starts (``OutputCollision``,
    a ValueError naming both).
    """
    # Workers sized by the caller are asked for: they are started, even on this machine alone.
    here = starts_ray_here(address) and workers is None and threads_per_worker is None and not gpus_per_worker
    ray = None if here else import_ray()
    _check_options(workers, gpus_per_worker, threads_per_worker, files_per_batch)
    resolve_weights_path(model)  # an unknown model name is refused before any worker starts
    calibrate_on_driver(model, backend, precision, calibration_images)
    started = time.perf_counter()
    threads_per_worker = threads_per_worker or 1
    inputs, output = [storage.as_given(str(item)) for item in inputs], storage.as_given(str(output))
    plan = collect_jobs(inputs, output, output_format and "." + output_format.lstrip("."), name)
    pending, results = _decided_on_driver(plan.jobs, existing_destinations(plan, output), overwrite, resume)
    upscaler_options = {"model": str(model), "backend": backend, "device": "cuda" if gpus_per_worker else "cpu",
                        "precision": precision, "tile": tile, "memory_budget": memory_budget,
                        "threads": None if gpus_per_worker else threads_per_worker, "tta": tta,
                        "outscale": outscale, "width": width, "height": height,
                        "calibration_images": calibration_images}
    file_options = {"overwrite": overwrite, "resume": resume, "max_pixels": max_pixels, "quality": quality,
                    "background": tuple(background)}
    worker_results, notes = [], list(plan.notes)
    try:
        if pending and here:
            notes.append(RAN_HERE)
            worker_results = upscale_here(pending, upscaler_options, file_options)
        elif pending:
            with ray_connected(ray, address, quiet=quiet), _data_context(ray, quiet):
                worker_results = _run_on_ray(ray, pending, upscaler_options, file_options, workers=workers,
                                             gpus_per_worker=gpus_per_worker, threads_per_worker=threads_per_worker,
                                             files_per_batch=files_per_batch)
    finally:
        storage.remove_abandoned_temporaries([job.destination for job in pending])
    answered = {result.destination for result in worker_results}
    results += worker_results + [
        FileResult(job.source, job.destination, FAILED, f"{job.source}: its worker died on each of "
                   f"{WORKER_DEATH_RETRIES + 1} attempts (killed, out of memory or a lost node)")
        for job in pending if job.destination not in answered]
    order = {(job.source, job.destination): index for index, job in enumerate(plan.jobs)}
    results.sort(key=lambda result: order[result.source, result.destination])
    report = storage.as_given(str(report)) if report else default_report_location(output, plan.output_is_file)
    write_report(report, results)
    return RunSummary.of(results, time.perf_counter() - started, report, plan.problems, notes)
