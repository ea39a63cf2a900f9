"""Opening an input video: which stream is upscaled, which are copied, which are dropped, and what each is."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction


class VideoError(RuntimeError):
    """A video that cannot be upscaled or written as asked; the message is one line naming what and why."""


def require_av():
    """The PyAV module, or a VideoError saying how to install it."""
    try:
        import av
    except ImportError as exc:
        raise VideoError(f"video needs PyAV, which is not installed ({exc}): pip install 'srgan_fast[video]'") from exc
    return av


def describe_stream(stream) -> str:
    """'#1 audio (aac)': how a stream is named in messages."""
    context = stream.codec_context
    if context is not None:
        return f"#{stream.index} {stream.type} ({context.name})"
    # Attachments (fonts, cover files) have no codec: their file name says what they are.
    what = stream.metadata.get("filename") or getattr(stream, "mimetype", None) or "unknown codec"
    return f"#{stream.index} {stream.type} ({what})"


def ffmpeg_reason(exc: BaseException) -> str:
    """The useful part of a PyAV error: FFmpeg's own words, without errno and call noise."""
    text = getattr(exc, "strerror", None) or str(exc)
    log = getattr(exc, "log", None)
    if log and len(log) >= 3 and log[2]:
        text = f"{text}: {str(log[2]).strip()}"
    return text


@dataclass
class Source:
    """An opened input and the plan for its streams."""

    path: str
    container: object  # av InputContainer
    video: object  # the av VideoStream upscaled
    copied: list = field(default_factory=list)  # av Streams remuxed as they are
    dropped: list[str] = field(default_factory=list)  # descriptions of streams left out, and why
    unasked: list[str] = field(default_factory=list)  # the dropped ones the caller did not ask to leave out

    @property
    def bit_depth(self) -> int:
        """Bits per sample of the decoded picture (8, 10, 12...)."""
        av = require_av()
        name = self.video.codec_context.pix_fmt
        if not name:
            return 8
        return max(component.bits for component in av.VideoFormat(name).components)

    @property
    def frame_rate(self) -> Fraction | None:
        return self.video.average_rate or self.video.guessed_rate or self.video.base_rate

    def estimated_frames(self) -> int | None:
        """The stream's frame count: from the header when it has one, else from duration × frame rate."""
        if self.video.frames:
            return int(self.video.frames)
        rate = self.frame_rate
        if not rate:
            return None
        if self.video.duration and self.video.time_base:
            return int(round(self.video.duration * self.video.time_base * rate))
        if self.container.duration:
            return int(round(Fraction(self.container.duration, 1_000_000) * rate))
        return None

    def announced_duration(self) -> tuple[Fraction, bool] | None:
        """(seconds, whose) the file says the video stream lasts, to check a decode against: whose is True for
        the stream's own duration (MP4/MOV track, Matroska DURATION tag), False for the container's, which
        also covers the other streams; None when the file says nothing."""
        video = self.video
        if video.duration and video.time_base:
            return video.duration * video.time_base, True
        tag = _matroska_duration(video.metadata.get("DURATION", ""))
        if tag:
            return tag, True
        if self.container.duration:
            return Fraction(self.container.duration, 1_000_000), False
        return None

    def close(self) -> None:
        self.container.close()


def _matroska_duration(text: str) -> Fraction | None:
    """'00:00:03.000000000' (FFmpeg's per-track DURATION tag in Matroska) -> seconds, or None."""
    hours, _, rest = text.partition(":")
    minutes, _, seconds = rest.partition(":")
    try:
        return int(hours) * 3600 + int(minutes) * 60 + Fraction(seconds)
    except ValueError:
        return None


def open_source(src: str | os.PathLike, *, copy_audio: bool = True, copy_subtitles: bool = True) -> Source:
    """Open ``src``, pick its first video stream (cover pictures do not count) and plan the others."""
    av = require_av()
    path = os.fspath(src)
    if not os.path.exists(path):
        raise VideoError(f"input {path!r} does not exist")
    if os.path.isdir(path):
        raise VideoError(f"input {path!r} is a folder: expected a video file")
    try:
        container = av.open(path, "r")
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise VideoError(f"cannot read {path!r} as a video: {ffmpeg_reason(exc)}") from exc
    streams = list(container.streams)
    pictures = [s for s in streams if s.type == "video" and s.disposition & av.stream.Disposition.attached_pic]
    videos = [s for s in streams if s.type == "video" and s not in pictures]
    if not videos:
        found = ", ".join(describe_stream(s) for s in streams) or "no streams at all"
        container.close()  # after describing: a closed container's streams must not be touched
        raise VideoError(f"{path!r} has no video stream to upscale (found: {found})")
    video = videos[0]
    source = Source(path, container, video)
    wanted = {"audio": copy_audio, "subtitle": copy_subtitles}
    for stream in streams:
        if stream is video:
            continue
        if wanted.get(stream.type):
            source.copied.append(stream)
        elif stream.type in wanted:
            source.dropped.append(f"{describe_stream(stream)}: left out as asked")
        elif stream in pictures:
            source.unasked.append(f"{describe_stream(stream)}: cover picture, not copied")
        elif stream.type == "video":
            source.unasked.append(f"{describe_stream(stream)}: only the first video stream is upscaled")
        else:
            source.unasked.append(f"{describe_stream(stream)}: {stream.type} streams are not copied")
    source.dropped += source.unasked
    return source
