"""The decode stage: demux, decode, pick the frame range, pass audio/subtitle packets through untouched.

Frame numbers count decoded frames in presentation order from 0; ``end_frame`` is exclusive. A range that
does not start at frame 0 moves every stream's timestamps so that the first kept frame is at time 0, and
keeps the audio and subtitle packets that overlap the kept frames' time span. A range of timestamps instead
(``pts_range``, for a part of a video cut at keyframes) starts decoding at the keyframe it begins with and keeps
the timestamps as they are, so that the parts join into the whole again.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable

import numpy as np

from srgan_fast.video.encode import FrameLook
from srgan_fast.video.probe import Source, VideoError, ffmpeg_reason, require_av

log = logging.getLogger("srgan_fast.video")
CORRUPT_POLICIES = ("skip", "stop")
# Skipped-packet warnings beyond this many go only into the final count, not one line each.
MAX_CORRUPT_WARNINGS = 5
# How far the decoded frames may end before the duration the file announces: one frame (the last frame's
# own duration is often a guess), or when only the container's duration is known, whose audio may run on past
# the video by a fraction of a second, two frames and at least this many seconds.
SHORT_SLACK_CONTAINER_S = Fraction(1, 2)


@dataclass
class DecodedFrame:
    index: int  # frame number in the input
    rgb: np.ndarray  # [H, W, 3] uint8 or uint16
    pts: int  # in the input video stream's time base, already moved by the range offset
    duration: int | None
    look: FrameLook | None = None  # colour tags and display matrix, on the first frame only


@dataclass
class CopyPacket:
    packet: object  # av Packet of a copied stream, timestamps already moved by the range offset


@dataclass
class DecodeStats:
    frames_decoded: int = 0
    decoded_until: Fraction | None = None  # seconds from the stream's start to the end of its last decoded frame
    last_frame_seconds: Fraction | None = None  # how long that frame lasts (its duration, else the gap before it)
    frames_selected: int = 0
    corrupt_skipped: int = 0
    packets_copied: dict[int, int] = field(default_factory=dict)  # input stream index -> count


def _packet_times(packet) -> tuple[Fraction | None, Fraction | None]:
    """(start, end) of a packet in seconds; None where the packet has no timestamp."""
    stamp = packet.pts if packet.pts is not None else packet.dts
    if stamp is None:
        return None, None
    start = stamp * packet.time_base
    return start, start + (packet.duration or 0) * packet.time_base


class FrameDecoder:
    """Runs in the decode thread; ``emit(item)`` hands items on and returns False once the run is cancelled."""

    def __init__(self, source: Source, *, start_frame: int, end_frame: int | None, work_dtype: type,
                 on_corrupt: str, emit: Callable[[object], bool],
                 pts_range: tuple[int | None, int | None] = (None, None)):
        self.source, self.start_frame, self.end_frame = source, start_frame, end_frame
        self.start_pts, self.end_pts = pts_range  # in the video stream's time base; None: open on that side
        # 16-bit work reads through planar gbrp16le: FFmpeg 8's swscale garbles 4:2:0 -> packed rgb48le at odd
        # widths, and the planar path upsamples chroma more accurately (to_ndarray returns it as H×W×RGB).
        # Conversions run with one swscale thread, as on the encode side (see FrameEncoder.encode).
        self.rgb_format = "rgb24" if work_dtype == np.uint8 else "gbrp16le"
        self.on_corrupt, self.emit = on_corrupt, emit
        self.stats = DecodeStats(packets_copied={s.index: 0 for s in source.copied})
        self.time_base = source.video.time_base
        # Seconds taken off every timestamp; known once the first kept frame is decoded.
        self.offset: Fraction | None = Fraction(0) if start_frame == 0 else None
        self.end_time: Fraction | None = None  # presentation time of frame ``end_frame``, once decoded
        self.held: list = []  # copied packets that arrive before the offset is known
        self.finished_copies: set[int] = set()  # copied streams that have passed end_time
        self.first_hw: tuple[int, int] | None = None
        self.last_pts: int | None = None

    def run(self) -> DecodeStats:
        video = self.source.video
        # Slice threads only: frame threads would report a damaged packet a few packets late (wrong time in
        # the message). Decoding the small input costs far less than upscaling it, so this does not limit speed.
        video.thread_type = "SLICE"
        copied = {s.index for s in self.source.copied}
        if self.start_pts is not None:
            # To the keyframe at or before the first frame, not through the frames before it (another part's).
            self.source.container.seek(self.start_pts, stream=video)
        for packet in self.source.container.demux(video, *self.source.copied):
            if packet.stream.index in copied:
                if packet.size and not self._copy(packet):
                    return self.stats
                if self.end_time is not None and self.finished_copies >= copied:
                    break
                continue
            if self.end_time is not None:
                if not copied:
                    break
                continue  # the range is complete; keep demuxing only for the copied streams' tail
            if not self._decode(packet):
                return self.stats
        else:  # the file ran out before the range did; a pts_range part decodes from a keyframe, not the start
            if self.start_pts is None:
                self._check_length()
        return self.stats

    def _check_length(self) -> None:
        """A file cut short decodes fine up to the cut and then simply ends: compare how far its frames got with
        the duration the file announces, and say so on one line with both frame counts."""
        announced = self.source.announced_duration()
        if announced is None or self.stats.decoded_until is None:
            return
        seconds, own = announced
        decoded, until = self.stats.frames_decoded, self.stats.decoded_until
        step = self.stats.last_frame_seconds  # as the frames are spaced: a header's rate may count ticks (AVI)
        slack = step if own else max(2 * step, SHORT_SLACK_CONTAINER_S)
        if until + slack >= seconds:
            return
        whose = "its video stream" if own else "its container"
        message = (f"{self.source.path!r} looks truncated: decoded {decoded} frames ({float(until):.2f} s), "
                   f"but {whose} announces {float(seconds):.2f} s, about {round(seconds / step)} frames")
        if self.on_corrupt == "stop":
            raise VideoError(f"{message}; on_corrupt='skip' (--on-corrupt skip) writes the frames there are")
        log.warning("%s; the output has only the frames decoded", message)

    def _decode(self, packet) -> bool:
        av = require_av()
        if packet.is_corrupt:
            self._corrupt(packet, "the demuxer flagged the packet as corrupt")
            return True
        try:
            frames = packet.decode()
        except av.error.FFmpegError as exc:
            self._corrupt(packet, ffmpeg_reason(exc))
            return True
        for frame in frames:
            if frame.is_corrupt:
                self._corrupt(packet, "the decoder flagged the frame as corrupt")
                continue
            if not self._frame(frame):
                return False
        return True

    def _corrupt(self, packet, reason: str) -> None:
        start, _ = _packet_times(packet)
        where = f"at {float(start):.3f} s" if start is not None else "at an unknown time"
        if self.on_corrupt == "stop":
            raise VideoError(f"corrupt video data {where} in {self.source.path!r} ({reason}); "
                             f"on_corrupt='skip' (--on-corrupt skip) skips damaged frames instead")
        self.stats.corrupt_skipped += 1
        if self.stats.corrupt_skipped <= MAX_CORRUPT_WARNINGS:
            log.warning("skipped corrupt video data %s (%s)", where, reason)

    def _frame(self, frame) -> bool:
        pts = frame.pts
        if pts is None:  # some containers (AVI, raw streams) leave frames untimed: continue the clock
            step = frame.duration or self._frame_step()
            pts = 0 if self.last_pts is None else self.last_pts + step
        previous, self.last_pts = self.last_pts, pts
        index = self.stats.frames_decoded
        self.stats.frames_decoded += 1
        seconds = pts * self.time_base
        gap = pts - previous if previous is not None and pts > previous else None
        length = self.stats.last_frame_seconds = (frame.duration or gap or self._frame_step()) * self.time_base
        self.stats.decoded_until = seconds + length - (self.source.video.start_time or 0) * self.time_base
        before_start = self.start_pts is not None and pts < self.start_pts
        if before_start or index < self.start_frame:
            # Copied packets that end before this frame end before the range's first frame too.
            self.held = [p for p in self.held if (_packet_times(p)[1] or 0) > seconds]
            return True
        past_end = self.end_pts is not None and pts >= self.end_pts
        if past_end or (self.end_frame is not None and index >= self.end_frame):
            self.end_time = seconds
            return True
        hw = (frame.height, frame.width)
        if self.first_hw is None:
            self.first_hw = hw
        elif hw != self.first_hw:
            raise VideoError(f"frame {index} is {hw[1]}x{hw[0]} but the video started at "
                             f"{self.first_hw[1]}x{self.first_hw[0]}: size changes mid-stream are not supported")
        look = None
        if self.offset is None:
            self.offset = seconds
        if self.stats.frames_selected == 0:
            look = FrameLook.of(frame)
            if self.start_pts is not None and pts > self.start_pts:  # frames between would be lost unseen
                raise VideoError(f"seeking {self.source.path!r} to timestamp {self.start_pts} landed after it, at "
                                 f"{pts}: this file cannot be cut there")
        shift = round(self.offset / self.time_base)
        rgb = frame.to_ndarray(format=self.rgb_format, threads=1)
        item = DecodedFrame(index, rgb, pts - shift, frame.duration, look)
        self.stats.frames_selected += 1
        if not self.emit(item):
            return False
        held, self.held = self.held, []
        return all(self._copy(packet) for packet in held)

    def _frame_step(self) -> int:
        rate = self.source.frame_rate or Fraction(25)
        return max(1, round(1 / (rate * self.time_base)))

    def _copy(self, packet) -> bool:
        start, end = _packet_times(packet)
        if self.end_time is not None and start is not None and start >= self.end_time:
            self.finished_copies.add(packet.stream.index)
            return True
        if self.offset is None:
            self.held.append(packet)
            return True
        if self.offset and end is not None and end <= self.offset:
            return True  # wholly before the range
        if self.offset:
            shift = round(self.offset / packet.time_base)
            if packet.pts is not None:
                packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
        self.stats.packets_copied[packet.stream.index] += 1
        return self.emit(CopyPacket(packet))
