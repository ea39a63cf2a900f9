"""The output side: which encoder a codec name means, its quality and pixel format, and the output streams.

Output frames are 4W×4H, so their sides are always even and every 4:2:0 encoder accepts them, whatever the
input size (an 18×14 or a 17×13 input both give a valid yuv420p output). The output keeps the input's pixel
format, hence its bit depth, unless asked otherwise; colour tags and HDR metadata: see ``srgan_fast.video.hdr``.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from srgan_fast.video.hdr import HdrMetadata, hdr_encoder_options
from srgan_fast.video.probe import VideoError, describe_stream, ffmpeg_reason, require_av

log = logging.getLogger("srgan_fast.video")


@dataclass(frozen=True)
class EncoderSpec:
    encoder: str  # FFmpeg encoder name
    quality_option: str | None  # the encoder option a --crf value goes to; None: lossless, no quality knob
    default_quality: int | None
    ten_bit_format: str  # the pixel format for 10-bit output when the input's own is not accepted
    # Options that keep the encoder's own console chatter (not FFmpeg's log) quiet.
    quiet_options: dict[str, str] = field(default_factory=dict)


# Defaults lean to quality: the output is meant to be watched, and its bits are 16× the input's pixels.
ENCODERS = {
    "h264": EncoderSpec("libx264", "crf", 18, "yuv420p10le"),
    "h265": EncoderSpec("libx265", "crf", 20, "yuv420p10le", {"x265-params": "log-level=error"}),
    "av1": EncoderSpec("libsvtav1", "crf", 30, "yuv420p10le", {"svtav1-params": "log-level=1"}),
    "ffv1": EncoderSpec("ffv1", None, None, "yuv420p10le"),
    "h264_nvenc": EncoderSpec("h264_nvenc", "cq", 20, "p010le"),
    "hevc_nvenc": EncoderSpec("hevc_nvenc", "cq", 20, "p010le"),
    "av1_nvenc": EncoderSpec("av1_nvenc", "cq", 24, "p010le"),
}
ALIASES = {"hevc": "h265", "libx264": "h264", "libx265": "h265", "libsvtav1": "av1"}

# FFmpeg AVColorSpace (what frames and streams carry) -> the swscale matrix constant that converts with it.
# BT.2020 constant-luminance has no swscale matrix; the non-constant one is the closest.
SWSCALE_MATRIX = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}
RGB_MATRIX, UNSPECIFIED_MATRIX = 0, 2  # AVCOL_SPC_RGB, AVCOL_SPC_UNSPECIFIED


def available_codecs() -> dict[str, str]:
    """Codec name -> FFmpeg encoder, for the codecs whose encoder this PyAV build has."""
    av = require_av()
    return {name: spec.encoder for name, spec in ENCODERS.items() if spec.encoder in av.codecs_available}


def resolve_codec(codec: str) -> EncoderSpec:
    av = require_av()
    name = ALIASES.get(codec, codec)
    if name not in ENCODERS:
        raise VideoError(f"unknown codec {codec!r}: expected one of {', '.join(ENCODERS)}")
    spec = ENCODERS[name]
    if spec.encoder not in av.codecs_available:
        raise VideoError(f"codec {codec!r} needs the FFmpeg encoder {spec.encoder}, which this PyAV build lacks "
                         f"(available here: {', '.join(available_codecs()) or 'none'})")
    return spec


def quality_options(spec: EncoderSpec, crf: int | None, bitrate: int | None) -> dict[str, str]:
    """Encoder options for a constant-quality (crf) or an average-bitrate run."""
    if crf is not None and bitrate is not None:
        raise VideoError(f"give crf or bitrate, not both (got crf={crf}, bitrate={bitrate})")
    if spec.quality_option is None and (crf is not None or bitrate is not None):
        raise VideoError(f"{spec.encoder} is lossless: crf and bitrate do not apply (got crf={crf}, bitrate={bitrate})")
    if bitrate is not None:
        if bitrate <= 0:
            raise VideoError(f"expected a positive bitrate in bits per second, got {bitrate}")
        return {"b": str(int(bitrate))}
    if spec.quality_option is None:
        return {}
    value = spec.default_quality if crf is None else crf
    if not isinstance(value, (int, np.integer)) or value < 0:
        raise VideoError(f"expected crf to be a non-negative integer, got {crf!r}")
    return {spec.quality_option: str(int(value))}


def choose_pix_fmt(spec: EncoderSpec, requested: str | None, source_pix_fmt: str | None, source_bits: int) -> str:
    """The output pixel format: the requested one, else the input's if the encoder takes it, else 4:2:0 at the
    input's depth, else at 10 bits (with a warning when that is fewer bits than the input's)."""
    av = require_av()
    accepted = [f.name for f in (av.Codec(spec.encoder, "w").video_formats or [])]
    if requested is not None:
        if requested not in accepted:
            raise VideoError(f"{spec.encoder} cannot encode pixel format {requested!r}: expected one of "
                             f"{', '.join(accepted)}")
        return requested
    if source_pix_fmt in accepted:
        return source_pix_fmt
    if source_bits > 8:
        same_depth = f"yuv420p{source_bits}le"
        preferred = same_depth if same_depth in accepted else spec.ten_bit_format
    else:
        preferred = "yuv420p" if "yuv420p" in accepted else "nv12"
    chosen = preferred if preferred in accepted else accepted[0]
    if format_bits(chosen) < source_bits:
        log.warning("%s has no %d-bit pixel format: writing %s, %d of the input's %d bits (codec ffv1 keeps up "
                    "to 16 bits, h265 up to 12)", spec.encoder, source_bits, chosen, format_bits(chosen), source_bits)
    return chosen


def format_bits(pix_fmt: str) -> int:
    av = require_av()
    return max(component.bits for component in av.VideoFormat(pix_fmt).components)


@dataclass
class FrameLook:
    """How the input frames look, from the first decoded frame: colour tags and display matrix."""

    color_range: int
    color_primaries: int
    color_trc: int
    colorspace: int
    display_matrix: list[int] | None  # 9 int32 in FFmpeg's AV_PKT_DATA_DISPLAYMATRIX layout
    hdr: HdrMetadata = field(default_factory=HdrMetadata)

    @classmethod
    def of(cls, frame) -> "FrameLook":
        av = require_av()
        matrix = None
        side = frame.side_data.get(av.sidedata.sidedata.Type.DISPLAYMATRIX)
        if side is not None:
            matrix = np.frombuffer(bytes(side), dtype=np.int32)[:9].tolist()
        return cls(int(frame.color_range), int(frame.color_primaries), int(frame.color_trc), int(frame.colorspace),
                   matrix, HdrMetadata.of(frame))

    def for_output(self, pix_fmt: str) -> "FrameLook":
        """The tags the output carries: an RGB input's "RGB" matrix tag would be false on YUV output, so YUV
        output from RGB input says "unspecified" (and is converted with swscale's default matrix)."""
        av = require_av()
        if self.colorspace == RGB_MATRIX and not av.VideoFormat(pix_fmt).is_rgb:
            return dataclasses.replace(self, colorspace=UNSPECIFIED_MATRIX)
        return self


def _parse_params(text: str) -> dict[str, str | None]:
    """'a=1:b=2:c' -> {"a": "1", "b": "2", "c": None}, the key=value list of x264/x265/svtav1-params."""
    items: dict[str, str | None] = {}
    for item in filter(None, text.split(":")):
        key, sep, value = item.partition("=")
        items[key] = value if sep else None
    return items


def merge_encoder_options(*layers: dict[str, str]) -> dict[str, str]:
    """Later layers win; the key=value lists of the ``*-params`` options are merged key by key, so that the
    caller's ``x265-params`` adds to the quiet and HDR settings instead of replacing them."""
    merged: dict[str, str] = {}
    for layer in layers:
        for key, value in layer.items():
            if key.endswith("-params") and key in merged:
                items = {**_parse_params(merged[key]), **_parse_params(value)}
                value = ":".join(k if v is None else f"{k}={v}" for k, v in items.items())
            merged[key] = value
    return merged


def add_video_stream(output, spec: EncoderSpec, *, width: int, height: int, pix_fmt: str, time_base: Fraction,
                     rate: Fraction | None, look: FrameLook, options: dict[str, str]):
    """The output video stream, its encoder opened now so that a bad combination fails before any work.

    The encoder runs in the input stream's time base, so input timestamps pass through unchanged
    (variable frame rate included). HDR metadata goes into the encoder's options where it has a place there;
    what cannot be carried is named in one warning once the encoder is open.
    """
    av = require_av()
    try:
        stream = output.add_stream(spec.encoder, rate=rate)
    except ValueError as exc:
        raise VideoError(f"cannot write {spec.encoder} video into a {output.format.name} file: {exc}; "
                         f"choose another codec or output extension") from exc
    stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
    context = stream.codec_context
    stream.time_base = context.time_base = time_base
    if rate:
        context.framerate = rate
    context.color_range, context.color_primaries = look.color_range, look.color_primaries
    context.color_trc, context.colorspace = look.color_trc, look.colorspace
    hdr_options, hdr_note = hdr_encoder_options(spec.encoder, look.hdr)
    context.options = merge_encoder_options(spec.quiet_options, hdr_options, options)
    if look.display_matrix is not None and any(look.display_matrix):
        stream.set_display_matrix(look.display_matrix)
    previous_level = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)  # so that the exception carries FFmpeg's reason
    try:
        context.open()
    except (av.error.FFmpegError, ValueError) as exc:
        raise VideoError(f"cannot start encoder {spec.encoder} for {width}x{height} {pix_fmt}: "
                         f"{ffmpeg_reason(exc)}") from exc
    finally:
        av.logging.set_level(previous_level)
    if hdr_note:
        log.warning(hdr_note)
    return stream


def add_copied_streams(output, streams: list) -> dict[int, object]:
    """Output streams for input audio/subtitle streams whose packets are copied: input index -> output stream."""
    copies = {}
    for stream in streams:
        try:
            copy = output.add_stream_from_template(stream)
        except ValueError as exc:
            flag = "--no-audio" if stream.type == "audio" else "--no-subtitles"
            raise VideoError(f"cannot copy {describe_stream(stream)} into a {output.format.name} file without "
                             f"re-encoding ({exc}); write .mkv instead, or leave it out ({flag})") from exc
        copy.metadata.update(stream.metadata)
        copy.disposition = stream.disposition
        copies[stream.index] = copy
    return copies


class FrameEncoder:
    """RGB arrays -> frames in the output pixel format, tagged like the input, encoded and muxed."""

    def __init__(self, output, stream, look: FrameLook):
        av = require_av()
        self.output, self.stream, self.look = output, stream, look
        self._video_frame = av.VideoFrame
        self._pix_fmt = stream.codec_context.pix_fmt
        # Unspecified or unknown matrices stay unspecified, as the decoder read them (swscale's default).
        self._matrix = SWSCALE_MATRIX.get(look.colorspace)
        self._range = look.color_range or None
        # pts -> the input frame's duration: encoders reorder frames and re-derive packet durations, so the
        # packets get their frame's duration back by pts (it sets the last frame's length, hence the frame rate).
        self._durations: dict[int, int] = {}

    def encode(self, rgb: np.ndarray, pts: int, duration: int | None, time_base: Fraction) -> None:
        """rgb: [4H, 4W, 3] uint8 or uint16; pts and duration in ``time_base`` (the input stream's)."""
        rgb_format = "rgb24" if rgb.dtype == np.uint8 else "rgb48le"
        frame = self._video_frame.from_ndarray(rgb, format=rgb_format)
        # One swscale thread: FFmpeg 8.1's auto-threaded RGB -> 10-bit YUV garbles bands of small frames at
        # random (seen at 72x56 and 68x52); the pipeline's own threads already keep the cores busy.
        frame = frame.reformat(format=self._pix_fmt, dst_colorspace=self._matrix, dst_color_range=self._range,
                               threads=1)
        frame.colorspace, frame.color_range = self.look.colorspace, self.look.color_range
        frame.color_primaries, frame.color_trc = self.look.color_primaries, self.look.color_trc
        frame.pts, frame.time_base = pts, time_base
        if duration:
            frame.duration = self._durations[pts] = duration
        self._mux(self.stream.encode(frame))

    def finish(self) -> None:
        self._mux(self.stream.encode(None))

    def _mux(self, packets) -> None:
        for packet in packets:
            duration = self._durations.pop(packet.pts, None)
            if duration is not None:
                packet.duration = duration
            self.output.mux(packet)
