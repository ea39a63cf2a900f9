"""Long videos across a Ray cluster: cut at keyframes on the driver, each segment upscaled and encoded by a pool of
Ray actors (one Upscaler each), the segments joined on the driver by remuxing (see ``segments`` for why the whole
comes out as the local run's)."""
from __future__ import annotations

import collections
import logging
import os
import re
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from srgan_fast.distributed.cluster import check_worker_options, cluster_capacity, import_ray, ray_connected
from srgan_fast.distributed.segments import (
    DEFAULT_SEGMENT_SECONDS,
    Segment,
    join_segments,
    plan_segments,
    segment_path,
    upscale_segment,
)
from srgan_fast.distributed.worker import calibrate_on_driver, die_here_if_armed, make_upscaler
from srgan_fast.io.atomic import process_alive
from srgan_fast.io.images import one_line
from srgan_fast.tiler.output_size import OutputSize
from srgan_fast.video.encode import (
    add_copied_streams,
    choose_pix_fmt,
    quality_options,
    resolve_codec,
)
from srgan_fast.video.pipeline import VideoResult, fit_output_size, output_format
from srgan_fast.video.probe import VideoError, open_source, require_av
from srgan_fast.weights import DEFAULT_MODEL, resolve_weights_path

log = logging.getLogger("srgan_fast.video")
# Attempts of a segment beyond the first: after an exception in it, or after its worker died (the actor is then
# restarted, loading its model again). Bounded, so that a segment that always fails ends the run.
SEGMENT_RETRIES = 3
# How long a failed run waits for the workers it stopped to be gone before it removes their segment folder.
STOP_WAIT_SECONDS = 30
# The hidden folder of a run's segments beside its output: ".{output name}.segments.{driver pid}@{host}." and
# mkdtemp's 8 characters. The driver's pid and host tell a later run whether the run that made it is gone.
SEGMENT_FOLDER = re.compile(r"\.(?P<name>.+)\.segments\.(?P<pid>\d+)@(?P<host>.+)\.[a-z0-9_]{8}")


@dataclass
class SegmentedVideoResult(VideoResult):
    """What a run on Ray wrote; ``seconds`` is the whole run, ``segment_seconds`` each segment's time on its
    worker (decode, upscale, encode), in order."""

    segments: int = 0
    segment_seconds: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class _Refused:
    """A segment's VideoError: the input or options cannot work, so retrying it would only repeat it."""

    cause: str


class SegmentWorker:
    """One per Ray actor: its Upscaler is made once and upscales every segment the actor is given."""

    def __init__(self, upscaler, upscaler_options: dict, input_hw: tuple[int, int], output_size: OutputSize):
        self.upscaler, self.refusal = upscaler, None
        if upscaler is not None:
            return
        try:
            self.upscaler = make_upscaler(**upscaler_options)
            if not output_size.native:
                fit_output_size(self.upscaler, input_hw, output_size)
        except Exception as error:  # noqa: BLE001 - an actor restarted would fail the same; said with its segment
            self.refusal = _Refused(f"its worker could not make its Upscaler: {one_line(error)}")

    def upscale(self, src: str, path: str, segment: Segment, encoding: dict):
        if self.refusal is not None:
            return self.refusal
        die_here_if_armed(path)
        try:
            return upscale_segment(self.upscaler, src, path, segment, encoding)
        except VideoError as error:
            return _Refused(str(error))


def _worker_count(ray, workers: int | None, gpus_per_worker: float, threads_per_worker: int, segments: int) -> int:
    """``workers``, or as many as the cluster holds now; never more than there are segments."""
    if workers is None:
        workers = cluster_capacity(ray, gpus_per_worker, threads_per_worker)
    return max(1, min(workers, segments))


def _outcome(ray, ref, segment: Segment, time_base) -> VideoResult:
    """A finished segment's result, or a VideoError naming the segment and the cause."""
    where = segment.describe(time_base)
    try:
        outcome = ray.get(ref)
    except ray.exceptions.RayTaskError as error:
        cause = getattr(error, "cause", None) or error
        raise VideoError(f"{where} failed on each of {SEGMENT_RETRIES + 1} attempts: {one_line(cause)}") from None
    except ray.exceptions.RayError as error:  # its worker died each time: killed, out of memory, a lost node
        raise VideoError(f"{where}: its worker died ({str(error).strip().splitlines()[0]})") from None
    if isinstance(outcome, _Refused):
        raise VideoError(f"{where}: {outcome.cause}")
    return outcome


def _run_segments(ray, actors: list, src: str, folder: Path, suffix: str, segments: list[Segment], encoding: dict,
                  time_base, progress: bool) -> list[VideoResult]:
    """Each segment to the next idle actor; the first segment that fails for good ends the run."""
    from tqdm import tqdm

    idle, waiting = list(actors), collections.deque(segments)
    running: dict = {}  # ObjectRef -> (Segment, the actor running it)
    results: dict[int, VideoResult] = {}
    try:
        with tqdm(total=len(segments), unit="segment", disable=not progress, dynamic_ncols=True, leave=False) as bar:
            while waiting or running:
                while waiting and idle:
                    segment, actor = waiting.popleft(), idle.pop()
                    ref = actor.upscale.options(retry_exceptions=True).remote(
                        src, str(segment_path(folder, segment, suffix)), segment, encoding)
                    running[ref] = segment, actor
                [ref], _ = ray.wait(list(running), num_returns=1)
                segment, actor = running.pop(ref)
                results[segment.number] = _outcome(ray, ref, segment, time_base)
                idle.append(actor)
                bar.update(1)
    finally:
        for actor in actors:
            ray.kill(actor)
        if running:  # stopped early: their processes must be gone before their folder is removed
            ray.wait(list(running), num_returns=len(running), timeout=STOP_WAIT_SECONDS)
    return [results[segment.number] for segment in segments]


def _segment_folder(dst_path: Path) -> Path:
    return Path(tempfile.mkdtemp(prefix=f".{dst_path.name}.segments.{os.getpid()}@{socket.gethostname()}.",
                                 dir=dst_path.parent))


def remove_abandoned_segment_folders(folder: Path) -> list[Path]:
    """Remove the segment folders in ``folder`` whose run's driver is gone (killed: no ``finally`` ran), as a
    local run removes the ``.partial`` files of killed runs; returns them. Only those made on this machine: the
    pid of a driver on another node of a shared mount says nothing here, and its run may be alive."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = SEGMENT_FOLDER.fullmatch(entry.name)
        if match is None or match["host"] != socket.gethostname() or not entry.is_dir(follow_symlinks=False):
            continue
        pid = int(match["pid"])
        if pid != os.getpid() and not process_alive(pid):
            shutil.rmtree(entry.path, ignore_errors=True)
            if not os.path.exists(entry.path):
                removed.append(Path(entry.path))
    return removed


def _check_copies(source, dst: Path, format_name: str) -> None:
    """Refuse, before any work, audio or subtitles that the output format cannot take as they are."""
    av = require_av()
    probe = av.open(str(dst), "w", format=format_name)  # opening writes nothing
    try:
        add_copied_streams(probe, source.copied)
    finally:
        probe.close()


def upscale_video(src, dst, *, address: str | None = None, segment_seconds: float = DEFAULT_SEGMENT_SECONDS,
                  upscaler=None, model=DEFAULT_MODEL, backend: str = "auto", precision: str | None = None,
                  tile=None, memory_budget: int | None = None, tta: bool = False, outscale: float | None = None,
                  width: int | None = None, height: int | None = None, codec: str = "h264", crf: int | None = None,
                  bitrate: int | None = None, pix_fmt: str | None = None, encoder_options: dict | None = None,
                  batch_size: int | None = None, on_corrupt: str = "skip", copy_audio: bool = True,
                  copy_subtitles: bool = True, overwrite: bool = False, workers: int | None = None,
                  gpus_per_worker: float = 0, threads_per_worker: int | None = None,
                  progress: bool = True, calibration_images: str | None = None) -> SegmentedVideoResult:
    """Upscale ``src`` into ``dst`` on a Ray cluster, as ``srgan_fast.video.upscale_video`` does on one machine.

    src, dst: local paths; on a cluster, on a mount every node shares (workers read ``src`` and write their
        segments in a hidden folder beside ``dst``).
    address: the Ray cluster ("auto", "ray://head:10001"); None: the one this process is connected to, else
        RAY_ADDRESS or a local instance. Every node needs srgan_fast and PyAV installed and ``model`` readable.
    segment_seconds: the segments' length: a segment starts at the first keyframe at least this long after the
        previous one's start (the video's keyframe spacing decides how close it comes).
    upscaler: a picklable object with ``upscale_batch`` and ``output_hw`` (as the local function takes) sent to
        every worker; else each worker makes one Upscaler from model, backend, precision, tile, memory_budget, tta,
        outscale / width / height (on GPUs with ``gpus_per_worker``, else on CPUs with ``threads_per_worker``
        native threads, default 1). calibration_images: as for srgan_fast.distributed.upscale_files.
    codec, crf, bitrate, pix_fmt, encoder_options, batch_size, on_corrupt, copy_audio, copy_subtitles, overwrite:
        as for the local function; each segment is encoded with the same encoder setup.
    workers: a fixed number of actors; None: as many as the cluster's free CPUs (or GPUs) hold now, at most one
        per segment.

    The output has the local run's frames, timestamps, colour tags and HDR settings, and its audio, subtitles and
    metadata copied the same way; with a lossy codec the pictures differ a little, since each segment starts a new
    group of pictures. A segment that raises or whose worker dies is retried (``SEGMENT_RETRIES`` times); one that
    fails for good ends the run with a VideoError naming the segment and the cause. The output is renamed into
    place only when complete; a run that fails leaves no output and removes its segment folder. A run killed
    outright (no cleanup runs) leaves its folder: the next run into the same folder on this machine removes it.
    """
    ray = import_ray()
    check_worker_options(workers, gpus_per_worker, threads_per_worker)
    started = time.perf_counter()
    src_path, dst_path = Path(src), Path(dst)
    format_name = output_format(src_path, dst_path, overwrite)
    spec = resolve_codec(codec)
    quality_options(spec, crf, bitrate)  # refused here rather than by every worker
    if upscaler is None:
        resolve_weights_path(model)
        calibrate_on_driver(model, backend, precision, calibration_images)
    source = open_source(src_path, copy_audio=copy_audio, copy_subtitles=copy_subtitles)
    try:
        segments, time_base = plan_segments(source, segment_seconds)
        context = source.video.codec_context
        input_hw = (context.height, context.width)
        chosen_pix_fmt = choose_pix_fmt(spec, pix_fmt, context.pix_fmt, source.bit_depth)
        _check_copies(source, dst_path, format_name)
    finally:
        source.close()
    output_size = OutputSize(outscale=outscale, width=width, height=height)
    threads_per_worker = threads_per_worker or 1
    upscaler_options = {"model": str(model), "backend": backend, "device": "cuda" if gpus_per_worker else "cpu",
                        "precision": precision, "tile": tile, "memory_budget": memory_budget,
                        "threads": None if gpus_per_worker else threads_per_worker, "tta": tta,
                        "calibration_images": calibration_images}
    encoding = {"codec": codec, "crf": crf, "bitrate": bitrate, "pix_fmt": chosen_pix_fmt,
                "encoder_options": encoder_options, "batch_size": batch_size, "on_corrupt": on_corrupt}
    resources = {"num_gpus": gpus_per_worker, "num_cpus": 1} if gpus_per_worker else {"num_cpus": threads_per_worker}
    for path in remove_abandoned_segment_folders(dst_path.parent):
        log.warning("removed %s, the segment folder of an earlier run that was killed", path)
    folder = _segment_folder(dst_path)
    try:
        with ray_connected(ray, address):
            actor_class = ray.remote(SegmentWorker).options(max_restarts=SEGMENT_RETRIES,
                                                            max_task_retries=SEGMENT_RETRIES, **resources)
            count = _worker_count(ray, workers, gpus_per_worker, threads_per_worker, len(segments))
            actors = [actor_class.remote(upscaler, upscaler_options, input_hw, output_size) for _ in range(count)]
            results = _run_segments(ray, actors, str(src_path), folder, dst_path.suffix, segments, encoding,
                                    time_base, progress)
        joined = folder / f"joined{dst_path.suffix}"
        copied, dropped = join_segments(src_path, [segment_path(folder, s, dst_path.suffix) for s in segments],
                                        segments, joined, format_name, copy_audio=copy_audio,
                                        copy_subtitles=copy_subtitles)
        joined.replace(dst_path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if folder.exists():
            log.warning("could not remove the segment folder %s", folder)
    corrupt = sum(result.corrupt_skipped for result in results)
    if corrupt:
        log.warning("skipped %d corrupt video packet(s) or frame(s) in %s", corrupt, src_path)
    first = results[0]
    return SegmentedVideoResult(str(dst_path), sum(result.frames for result in results), first.size, first.codec,
                                first.pix_fmt, corrupt, copied, dropped, time.perf_counter() - started,
                                len(segments), [result.seconds for result in results])
