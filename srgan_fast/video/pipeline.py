"""``upscale_video``: decode, upscale and encode in three threads joined by bounded queues.

    decode thread  --(frames, copied packets)-->  upscale thread  --(×4 frames, packets)-->  encode (caller's thread)

The caller's thread owns the output file, so Ctrl-C lands where the cleanup is. Every stage checks a shared
stop flag while it waits on a full queue, so a failure anywhere ends the others promptly; the output is
written under a hidden temporary name beside the destination and renamed only after the last packet.
"""
from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from srgan_fast.io.atomic import remove_stale_temporaries, temporary_prefix
from srgan_fast.tiler.output_size import OutputSize
from srgan_fast.tiler.streaming import StreamError, default_batch_size, stream_frames
from srgan_fast.video.decode import CORRUPT_POLICIES, CopyPacket, DecodedFrame, DecodeStats, FrameDecoder
from srgan_fast.video.encode import (
    FrameEncoder,
    add_copied_streams,
    add_video_stream,
    choose_pix_fmt,
    format_bits,
    quality_options,
    resolve_codec,
)
from srgan_fast.video.eta import SteadyRate
from srgan_fast.video.probe import Source, VideoError, ffmpeg_reason, open_source, require_av
from srgan_fast.weights import DEFAULT_MODEL

log = logging.getLogger("srgan_fast.video")
POLL_SECONDS = 0.1  # how often a waiting stage looks at the stop flag


@dataclass
class VideoResult:
    """What a finished run wrote."""

    path: str
    frames: int  # frames written
    size: tuple[int, int]  # output (width, height)
    codec: str
    pix_fmt: str
    corrupt_skipped: int
    copied: list[str] = field(default_factory=list)  # descriptions of streams copied
    dropped: list[str] = field(default_factory=list)  # descriptions of streams left out, and why
    seconds: float = 0.0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


@dataclass
class _End:
    stats: DecodeStats


@dataclass
class _Failure:
    error: BaseException


class _Stage:
    """A worker thread whose exceptions travel downstream as a ``_Failure`` item."""

    def __init__(self, name: str, body: Callable[[], None], out: queue.Queue, stop: threading.Event):
        self.out, self.stop, self.body = out, stop, body
        self.thread = threading.Thread(target=self._run, name=f"srgan_fast-{name}", daemon=True)

    def _run(self) -> None:
        try:
            self.body()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread, which re-raises it
            put(self.out, _Failure(exc), self.stop)


def put(q: queue.Queue, item, stop: threading.Event) -> bool:
    """Put, waiting while the queue is full; False if the run was stopped meanwhile."""
    while not stop.is_set():
        try:
            q.put(item, timeout=POLL_SECONDS)
            return True
        except queue.Full:
            continue
    return False


def get(q: queue.Queue, stop: threading.Event):
    """The next item, or None once the run was stopped."""
    while not stop.is_set():
        try:
            return q.get(timeout=POLL_SECONDS)
        except queue.Empty:
            continue
    return None


def _check_options(start_frame, end_frame, batch_size, on_corrupt, pts_range, copying: bool) -> None:
    if not isinstance(start_frame, int) or start_frame < 0:
        raise VideoError(f"expected start_frame to be a non-negative integer, got {start_frame!r}")
    if end_frame is not None and (not isinstance(end_frame, int) or end_frame <= start_frame):
        raise VideoError(f"expected end_frame to be an integer above start_frame={start_frame}, got {end_frame!r}")
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise VideoError(f"expected batch_size to be a positive integer, got {batch_size!r}")
    if pts_range != (None, None):
        if (start_frame, end_frame) != (0, None):
            raise VideoError(f"give a frame range or pts_range, not both (got start_frame={start_frame}, "
                             f"end_frame={end_frame}, pts_range={pts_range!r})")
        if copying:
            raise VideoError("a pts_range part holds video only: pass copy_audio=False and copy_subtitles=False")
    if on_corrupt not in CORRUPT_POLICIES:
        raise VideoError(f"expected on_corrupt to be one of {', '.join(CORRUPT_POLICIES)}, got {on_corrupt!r}")


def _temporary_path(dst: Path) -> Path:
    # Hidden and named as partial, in the destination folder so that the final rename is atomic; named as
    # atomic_output names its files, so that one a killed run left is removed by the next (io.atomic).
    return dst.with_name(f"{temporary_prefix(dst.name)}{uuid.uuid4().hex[:8]}.partial")


def output_format(src: Path, dst: Path, overwrite: bool) -> str:
    """The container format ``dst`` is to be written in, once it is known that it may be written."""
    av = require_av()
    if dst.exists() and not overwrite:
        raise VideoError(f"output {str(dst)!r} exists (pass overwrite=True / --overwrite to replace it)")
    if dst.exists() and src.exists() and dst.resolve() == src.resolve():
        raise VideoError(f"output {str(dst)!r} is the input itself")
    if not dst.parent.is_dir():
        raise VideoError(f"output folder {str(dst.parent)!r} does not exist")
    try:
        named = av.open(str(dst), "w")  # the format guessed from the name; opening writes nothing
        format_name = named.format.name
        named.close()
    except ValueError as exc:
        raise VideoError(f"cannot tell the container format from the output name {dst.name!r} ({exc}): "
                         f"use an extension such as .mp4 or .mkv") from exc
    return format_name


def fit_output_size(upscaler, input_hw: tuple[int, int], output_size: OutputSize) -> None:
    """Make ``upscaler`` write ``output_size`` for frames of ``input_hw``, its sides rounded down to even ones,
    which 4:2:0 and 4:2:2 encoders need."""
    target = upscaler.output_hw(input_hw, output_size)
    upscaler.output_size = OutputSize(size=(target[0] // 2 * 2, target[1] // 2 * 2))


def upscale_video(src: str | os.PathLike, dst: str | os.PathLike, *, upscaler=None, model=DEFAULT_MODEL,
                  backend: str = "auto", device: str | None = None, precision: str | None = None,
                  tile: int | None = None, codec: str = "h264", crf: int | None = None, bitrate: int | None = None,
                  pix_fmt: str | None = None, encoder_options: dict[str, str] | None = None, start_frame: int = 0,
                  end_frame: int | None = None, batch_size: int | None = None, on_corrupt: str = "skip",
                  copy_audio: bool = True, copy_subtitles: bool = True, overwrite: bool = False,
                  progress: bool = True, tta: bool = False, outscale: float | None = None, width: int | None = None,
                  height: int | None = None, pts_range: tuple[int | None, int | None] = (None, None),
                  **backend_options) -> VideoResult:
    """Upscale every frame of ``src`` into ``dst``, keeping timestamps, rotation, colour tags, audio, subtitles.

    upscaler: an ``Upscaler`` (or any object with ``upscale_batch(frames)`` and ``output_hw(hw)``) to use; else one
        is made from model, backend, device, precision, tile, tta and backend_options, once for all frames.
    outscale / width / height: the output size as for images (the model's result resized with Lanczos), rounded
        down to even sides, which 4:2:0 and 4:2:2 encoders need (set on a given ``upscaler`` too); default: the
        model's scale.
    codec: h264 (libx264), h265 (libx265), av1 (libsvtav1), ffv1 (lossless), h264_nvenc, hevc_nvenc, av1_nvenc.
    crf / bitrate: constant quality (lower is better; default per codec) or average bits per second.
    pix_fmt: e.g. yuv420p (8-bit) or yuv420p10le (10-bit); default: the input's if the encoder takes it, else
        4:2:0 at the input's bit depth. 10- and 12-bit input is upscaled as 16-bit RGB, with no 8-bit step; PQ and
        HLG pictures are upscaled as coded, in their transfer domain. HDR10 mastering display and content light
        level metadata go through the encoder where it takes them (h265, h264, av1), else a warning says they
        were dropped: see ``srgan_fast.video.hdr``.
    encoder_options: extra FFmpeg encoder options, e.g. {"preset": "slow"}.
    start_frame, end_frame: the frame range [start, end) in decoded frame numbers.
    batch_size: frames per upscale call (default from the frame size and device, see srgan_fast.tiler.streaming).
    on_corrupt: "skip" damaged frames with a warning (counted in the result) or "stop" with an error.
    pts_range: (start, end): only the frames whose timestamps lie in [start, end), in the input video stream's time
        base (None: open on that side), decoded from the keyframe at or before start, their timestamps kept as
        they are; video only (copy_audio=False, copy_subtitles=False). Parts of a video cut at its keyframes, so
        written, join into what the whole run writes (``srgan_fast.distributed.upscale_video``).
    Raises VideoError (one line) for inputs or options that cannot work; nothing is left at ``dst`` then.
    """
    started = time.time()
    _check_options(start_frame, end_frame, batch_size, on_corrupt, pts_range, copy_audio or copy_subtitles)
    spec = resolve_codec(codec)
    options = {**quality_options(spec, crf, bitrate), **(encoder_options or {})}
    src_path, dst_path = Path(src), Path(dst)
    format_name = output_format(src_path, dst_path, overwrite)
    for path in remove_stale_temporaries([dst_path.parent], started):
        log.warning("removed %s, the temporary file of an earlier run that was killed", path)
    source = open_source(src_path, copy_audio=copy_audio, copy_subtitles=copy_subtitles)
    try:
        if upscaler is None:
            from srgan_fast.api import Upscaler

            upscaler = Upscaler(model, backend=backend, device=device, precision=precision, tile=tile, tta=tta,
                                **backend_options)
        if (outscale, width, height) != (None, None, None):
            context = source.video.codec_context
            fit_output_size(upscaler, (context.height, context.width),
                            OutputSize(outscale=outscale, width=width, height=height))
        out_pix_fmt = choose_pix_fmt(spec, pix_fmt, source.video.codec_context.pix_fmt, source.bit_depth)
        # Upscale at 16 bits when either side has more than 8, so that 10-bit output gets the model's precision.
        work_dtype = np.uint16 if max(source.bit_depth, format_bits(out_pix_fmt)) > 8 else np.uint8
        run = _Run(source, upscaler, dst_path, format_name, spec, options, out_pix_fmt, batch_size, progress)
        return run.execute(start_frame, end_frame, work_dtype, on_corrupt, pts_range)
    finally:
        source.close()


class _Run:
    """One upscale_video call: its threads, queues and output file."""

    def __init__(self, source: Source, upscaler, dst: Path, format_name: str, spec, options, pix_fmt: str,
                 batch_size: int | None, progress: bool):
        self.source, self.upscaler, self.dst, self.format_name = source, upscaler, dst, format_name
        self.spec, self.options, self.pix_fmt = spec, options, pix_fmt
        self.batch_size, self.progress = batch_size, progress
        self.stop = threading.Event()
        self.decoded: queue.Queue = queue.Queue(maxsize=16)
        self.upscaled: queue.Queue | None = None  # sized once the batch size is known

    def execute(self, start_frame: int, end_frame: int | None, work_dtype, on_corrupt: str,
                pts_range: tuple[int | None, int | None]) -> VideoResult:
        av = require_av()
        started = time.perf_counter()
        decoder = FrameDecoder(self.source, start_frame=start_frame, end_frame=end_frame, work_dtype=work_dtype,
                               on_corrupt=on_corrupt, emit=lambda item: put(self.decoded, item, self.stop),
                               pts_range=pts_range)

        def decode() -> None:
            try:
                stats = decoder.run()
            except av.error.FFmpegError as exc:
                raise VideoError(f"reading {self.source.path!r} failed: {ffmpeg_reason(exc)}") from exc
            put(self.decoded, _End(stats), self.stop)

        stages = [_Stage("decode", decode, self.decoded, self.stop)]
        stages[0].thread.start()
        temporary = _temporary_path(self.dst)
        output = None
        try:
            leading, first = self._first_frame(start_frame, pts_range)
            height, width = first.rgb.shape[:2]
            batch = self.batch_size or default_batch_size(self.upscaler, (height, width))
            self.upscaled = queue.Queue(maxsize=max(4, 2 * batch))
            look = first.look.for_output(self.pix_fmt)
            output = av.open(str(temporary), "w", format=self.format_name)
            out_height, out_width = self.upscaler.output_hw((height, width))
            stream = add_video_stream(output, self.spec, width=out_width, height=out_height,
                                      pix_fmt=self.pix_fmt, time_base=self.source.video.time_base,
                                      rate=self.source.frame_rate, look=look, options=self.options)
            copies = add_copied_streams(output, self.source.copied)
            output.metadata.update(self.source.container.metadata)
            encoder = FrameEncoder(output, stream, look)
            stages.append(_Stage("upscale", lambda: self._upscale(leading + [first], batch), self.upscaled,
                                 self.stop))
            stages[1].thread.start()
            frames, stats = self._encode(encoder, copies, start_frame, end_frame, batch)
            encoder.finish()
            output.close()
            output = None
            os.replace(temporary, self.dst)
        except av.error.FFmpegError as exc:
            raise VideoError(f"writing {str(self.dst)!r} failed: {ffmpeg_reason(exc)}") from exc
        finally:
            self.stop.set()
            if output is not None:
                _close_quietly(output)
            if temporary.exists():
                temporary.unlink()
            for stage in stages:
                stage.thread.join(timeout=10)
        if stats.corrupt_skipped:
            log.warning("skipped %d corrupt video packet(s) or frame(s) in %s", stats.corrupt_skipped,
                        self.source.path)
        for line in self.source.unasked:
            log.warning("dropped stream %s", line)
        out_size = self.upscaler.output_hw((height, width))[::-1]  # (width, height)
        return VideoResult(str(self.dst), frames, out_size, self.spec.encoder, self.pix_fmt,
                           stats.corrupt_skipped, [f"#{s.index} {s.type} ({s.codec_context.name})"
                                                   for s in self.source.copied],
                           list(self.source.dropped), time.perf_counter() - started)

    def _next_decoded(self):
        item = get(self.decoded, self.stop)
        if isinstance(item, _Failure):
            raise item.error
        return item

    def _first_frame(self, start_frame: int, pts_range) -> tuple[list, DecodedFrame]:
        """Copied packets that come before the first kept frame, and that frame (it sets up the output)."""
        leading = []
        while True:
            item = self._next_decoded()
            if isinstance(item, DecodedFrame):
                return leading, item
            if isinstance(item, _End):
                decoded = item.stats.frames_decoded
                if decoded == 0:
                    skipped = f" ({item.stats.corrupt_skipped} corrupt skipped)" if item.stats.corrupt_skipped else ""
                    raise VideoError(f"{self.source.path!r} contains no decodable video frames{skipped}")
                if pts_range != (None, None):
                    raise VideoError(f"{self.source.path!r} has no frames with timestamps in [{pts_range[0]}, "
                                     f"{pts_range[1]})")
                raise VideoError(f"start_frame={start_frame} is past the end: {self.source.path!r} has "
                                 f"{decoded} frames")
            leading.append(item)

    def _upscale(self, leading: list, batch: int) -> None:
        """Upscale thread: frames through ``stream_frames``; copied packets pass straight on."""
        timing: deque = deque()  # (pts, duration) of frames inside stream_frames, in order
        end = None  # the decode stage's _End, once it came
        failure = None  # the decode stage's error: raised as it is, after the frames before it

        def frames() -> Iterator[np.ndarray]:
            nonlocal end, failure
            pending = deque(leading)
            while True:
                try:
                    item = pending.popleft() if pending else self._next_decoded()
                except Exception as exc:
                    failure = exc
                    return
                if item is None or isinstance(item, _End):
                    end = item
                    return
                if isinstance(item, CopyPacket):
                    if not put(self.upscaled, item, self.stop):
                        return
                    continue
                timing.append((item.pts, item.duration))
                yield item.rgb

        try:
            for big in stream_frames(self.upscaler, frames(), batch_size=batch):
                pts, duration = timing.popleft()
                if not put(self.upscaled, (big, pts, duration), self.stop):
                    return
        except StreamError as exc:
            # The upscaler's own error: the stream's frame index counts from this run's first frame, which a
            # frame range or a segment moves, so it would mislead here.
            raise exc.__cause__ from None
        if failure is not None:
            raise failure
        if end is not None:
            put(self.upscaled, end, self.stop)

    def _encode(self, encoder: FrameEncoder, copies: dict, start_frame: int, end_frame: int | None, batch: int):
        from tqdm import tqdm

        total = self.source.estimated_frames()
        if total is not None:
            total = max(0, min(total, end_frame or total) - start_frame)
        time_base = self.source.video.time_base
        frames = 0
        steady = SteadyRate(total or None, batch)
        # tqdm's own time left counts the warm-up in (see srgan_fast.video.eta): the postfix carries ours.
        with tqdm(total=total or None, unit="frame", desc=self.dst.name, disable=not self.progress,
                  dynamic_ncols=True, leave=False, bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"
                  ) as bar:
            while True:
                item = get(self.upscaled, self.stop)
                if isinstance(item, _Failure):
                    raise item.error
                if isinstance(item, _End):
                    return frames, item.stats
                if isinstance(item, CopyPacket):
                    packet = item.packet
                    packet.stream = copies[packet.stream.index]
                    encoder.output.mux(packet)
                    continue
                big, pts, duration = item
                encoder.encode(big, pts, duration, time_base)
                frames += 1
                steady.frame_done()
                bar.set_postfix_str(steady.text(), refresh=False)
                bar.update(1)


def _close_quietly(output) -> None:
    try:
        output.close()
    except Exception as exc:  # noqa: BLE001 - already failing; the first error is the one to report
        log.debug("closing the partial output failed too: %s", exc)
