"""A video in parts: cut at keyframes on the driver, each part upscaled on a worker, the parts joined by remuxing.

Nothing here imports Ray, so the cut, a part and the join can be run and tested in a plain process.

Why the whole comes out as the local run's: a part is the frames whose timestamps lie in [its keyframe, the next
part's keyframe), decoded from its keyframe and encoded by the local pipeline with the local encoder settings, its
timestamps kept as they are (``upscale_video(pts_range=...)``). Each part is written in the destination's own
container format, so that its encoder is opened exactly as the local run's (same container flags), and the muxer
rounds its timestamps exactly as the destination's will; remuxing a part's packets into the destination is then
lossless for timestamps too. Audio, subtitles and metadata come from the source as the local run copies them.
"""
from __future__ import annotations

import contextlib
import heapq
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from srgan_fast.video.encode import add_copied_streams
from srgan_fast.video.pipeline import VideoResult, upscale_video
from srgan_fast.video.probe import Source, VideoError, ffmpeg_reason, open_source, require_av

log = logging.getLogger("srgan_fast.video")
DEFAULT_SEGMENT_SECONDS = 10.0


@dataclass(frozen=True)
class Segment:
    """Part ``number`` of a video: the frames with timestamps in [start, end), in the video stream's time base;
    None: from the video's first frame (no seek), or to its last."""

    number: int
    start: int | None
    end: int | None

    def describe(self, time_base: Fraction) -> str:
        def seconds(pts: int | None, open_side: str) -> str:
            return open_side if pts is None else f"{float(pts * time_base):.3f} s"

        return f"segment {self.number} ({seconds(self.start, 'start')} to {seconds(self.end, 'end')})"


def plan_segments(source: Source, segment_seconds: float) -> tuple[list[Segment], Fraction]:
    """The parts of about ``segment_seconds`` each of an opened ``Source``'s video, cut at keyframes, and its time
    base.

    Reads only packet headers (no decoding): a new part starts at the first keyframe at least ``segment_seconds``
    after the current part's start. A video whose keyframes carry no timestamps stays one part.
    """
    if not (isinstance(segment_seconds, (int, float)) and segment_seconds > 0):
        raise VideoError(f"expected segment_seconds to be a positive number of seconds, got {segment_seconds!r}")
    av = require_av()
    time_base = source.video.time_base
    keyframes = set()
    try:
        for packet in source.container.demux(source.video):
            if packet.size and packet.is_keyframe:
                if packet.pts is None:
                    return [Segment(0, None, None)], time_base
                keyframes.add(packet.pts)
    except av.error.FFmpegError as exc:
        raise VideoError(f"reading {source.path!r} failed: {ffmpeg_reason(exc)}") from exc
    cuts: list[int] = []
    for pts in sorted(keyframes):
        if not cuts or (pts - cuts[-1]) * time_base >= Fraction(segment_seconds):
            cuts.append(pts)
    starts = [None] + cuts[1:]  # the first part also holds any frames before the first keyframe
    ends = cuts[1:] + [None]
    return [Segment(number, start, end) for number, (start, end) in enumerate(zip(starts, ends))], time_base


def segment_path(folder: str | os.PathLike, segment: Segment, suffix: str) -> Path:
    """Where a part is written: the destination's extension, hence its container format."""
    return Path(folder, f"segment-{segment.number:05d}{suffix}")


def upscale_segment(upscaler, src: str, path: str | os.PathLike, segment: Segment, encoding: dict) -> VideoResult:
    """Upscale one part into ``path`` (written whole, through a temporary name) with the local pipeline.

    encoding: upscale_video's codec, crf, bitrate, pix_fmt, encoder_options, batch_size and on_corrupt. A part an
    earlier attempt finished before its worker died is written again, the same.
    """
    return upscale_video(src, path, upscaler=upscaler, pts_range=(segment.start, segment.end), copy_audio=False,
                         copy_subtitles=False, overwrite=True, progress=False, **encoding)


def _parameters(stream) -> tuple:
    """What every part's video stream must share for its packets to follow another part's under one header."""
    context = stream.codec_context
    return (context.name, context.width, context.height, context.pix_fmt, bytes(context.extradata or b""),
            context.color_range, context.color_primaries, context.color_trc, context.colorspace)


def _timed(packets: Iterator, rank: int) -> Iterator[tuple]:
    """(decode time in seconds, rank, count, packet): ordered as the muxer interleaves; an untimed packet goes with
    the one before it."""
    time = Fraction(-10**9)
    for count, packet in enumerate(packets):
        stamp = packet.dts if packet.dts is not None else packet.pts
        if stamp is not None:
            time = stamp * packet.time_base
        yield time, rank, count, packet


def _part_packets(paths: list[Path], output_stream, segments: list[Segment], time_base: Fraction) -> Iterator:
    av = require_av()
    reference = None
    for path, segment in zip(paths, segments):
        with av.open(str(path)) as part:
            video = part.streams.video[0]
            if reference is None:
                reference = _parameters(video)
            elif _parameters(video) != reference:
                raise VideoError(f"{segment.describe(time_base)} was encoded with other stream parameters than "
                                 f"segment 0 (size, pixel format, colour tags or codec headers): cannot join it "
                                 f"without re-encoding")
            derive_dts = None
            for packet in part.demux(video):
                if not packet.size:
                    continue
                if derive_dts is None:
                    # A container that stores no decode timestamps (Matroska) has its parser guess them, and
                    # none for the first packets: the muxer derives them all from the pts instead, across parts.
                    derive_dts = packet.dts is None
                if derive_dts:
                    packet.dts = None
                packet.stream = output_stream
                yield packet


def _copied_packets(source, copies: dict) -> Iterator:
    if not copies:
        return
    for packet in source.container.demux(*source.copied):
        if packet.size:
            packet.stream = copies[packet.stream.index]
            yield packet


def join_segments(src: str | os.PathLike, paths: list[Path], segments: list[Segment], dst: Path, format_name: str,
                  *, copy_audio: bool, copy_subtitles: bool) -> tuple[list[str], list[str]]:
    """Remux the parts' video packets in order, and the source's audio, subtitles and metadata as the local run
    copies them, into ``dst`` (written directly: the caller renames it into place). Returns the descriptions of
    the streams copied and of those dropped."""
    av = require_av()
    source = open_source(src, copy_audio=copy_audio, copy_subtitles=copy_subtitles)
    copied = [f"#{s.index} {s.type} ({s.codec_context.name})" for s in source.copied]
    output = None
    try:
        with av.open(str(paths[0])) as first:
            output = av.open(str(dst), "w", format=format_name)
            video = output.add_stream_from_template(first.streams.video[0])
        # As the local run's stream: the input's time base asked of the muxer (which then picks the same one), and
        # its frame rate (the stream's average rate, from which Matroska derives its default frame duration).
        video.time_base = video.codec_context.time_base = source.video.time_base
        if source.frame_rate:
            video.codec_context.framerate = source.frame_rate
        copies = add_copied_streams(output, source.copied)
        output.metadata.update(source.container.metadata)
        time_base = source.video.time_base
        merged = heapq.merge(_timed(_part_packets(paths, video, segments, time_base), 0),
                             _timed(_copied_packets(source, copies), 1))
        for _, _, _, packet in merged:
            output.mux(packet)
        output.close()
        output = None
    except av.error.FFmpegError as exc:
        raise VideoError(f"joining the segments into {str(dst)!r} failed: {ffmpeg_reason(exc)}") from exc
    finally:
        if output is not None:
            with contextlib.suppress(Exception):  # already failing: the first error is the one to report
                output.close()
        source.close()
    for line in source.unasked:
        log.warning("dropped stream %s", line)
    return copied, list(source.dropped)
