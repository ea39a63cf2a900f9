"""Small synthetic videos for tests and benchmarks: chosen sizes, timestamps, colour tags, audio and subtitles.

The frames are smooth colour gradients that move from frame to frame, so that lossy codecs keep them close
and a wrong colour matrix or a swapped frame shows up as a large error. ``write_hdr_test_video`` makes
10/12-bit HDR-tagged videos whose luma is a ramp through every code, written as coded samples (no RGB step).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from srgan_fast.video.encode import merge_encoder_options
from srgan_fast.video.hdr import ContentLight, HdrMetadata, MasteringDisplay, hdr_encoder_options

# The colour tags of BT.709 limited-range video, as FFmpeg enum values (range, primaries, transfer, matrix).
BT709_TV = {"color_range": 1, "color_primaries": 1, "color_trc": 1, "colorspace": 1}
# HDR10 and HLG: limited range, BT.2020 primaries and non-constant-luminance matrix, PQ or HLG transfer.
HDR10_PQ = {"color_range": 1, "color_primaries": 9, "color_trc": 16, "colorspace": 9}
HLG = {"color_range": 1, "color_primaries": 9, "color_trc": 18, "colorspace": 9}
# A P3-D65 display of 0.005-1000 cd/m², on x264/x265's grid (1/50000, 1/10000 cd/m²) so that it survives exactly.
TEST_MASTERING = MasteringDisplay(
    primaries=((Fraction(34000, 50000), Fraction(16000, 50000)), (Fraction(13250, 50000), Fraction(34500, 50000)),
               (Fraction(7500, 50000), Fraction(3000, 50000))),
    white_point=(Fraction(15635, 50000), Fraction(16450, 50000)),
    luminance=(Fraction(50, 10000), Fraction(1000)))
TEST_CONTENT_LIGHT = ContentLight(max_cll=1000, max_fall=400)


@dataclass
class SyntheticVideo:
    path: str
    frames: list[np.ndarray]  # the RGB frames given to the encoder, [H, W, 3] uint8 each
    pts: list[int]  # presentation timestamps of the frames, in time_base
    time_base: Fraction
    audio_packets: list[bytes]  # the encoded audio packets as muxed, in order
    subtitle_packets: list[bytes]


def gradient_frame(width: int, height: int, index: int) -> np.ndarray:
    """[height, width, 3] uint8: three gradients at different angles, shifted by ``index``."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = index * 0.7
    red = 0.5 + 0.45 * np.sin(x / max(width, 1) * 3.0 + phase)
    green = 0.5 + 0.45 * np.cos(y / max(height, 1) * 3.0 - phase)
    blue = 0.5 + 0.45 * np.sin((x + y) / max(width + height, 1) * 4.0 + 2 * phase)
    return (np.stack([red, green, blue], axis=-1) * 255.0).round().astype(np.uint8)


def write_test_video(
    path: str | os.PathLike,
    *,
    width: int = 18,
    height: int = 14,
    pts: list[int] | None = None,
    time_base: Fraction = Fraction(1, 1000),
    rate: Fraction | int = 25,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    encoder_options: dict[str, str] | None = None,
    color: dict[str, int] | None = None,
    rotation: int = 0,
    audio: bool = False,
    subtitles: bool = False,
    attachment: bool = False,
    corrupt_packet: int | None = None,
    container_options: dict[str, str] | None = None,
) -> SyntheticVideo:
    """Encode gradient frames at the given ``pts`` (default: 5 frames at ``rate``) into ``path``.

    ``audio`` adds a mono AAC track as long as the video; ``subtitles`` one subtitle packet (SubRip in
    Matroska, mov_text in MP4); ``attachment`` a file attached to a Matroska output. ``corrupt_packet``
    replaces the bytes of that video packet (0-based, in muxing order) with noise of the same length, as a
    damaged file would have. ``container_options`` go to the muxer, e.g. {"movflags": "+faststart"}.
    """
    import av

    path = os.fspath(path)
    if pts is None:
        step = int(round(1 / (Fraction(rate) * time_base)))
        pts = [i * step for i in range(5)]
    out = av.open(path, "w", options=dict(container_options or {}))
    video = out.add_stream(codec, rate=Fraction(rate))
    video.width, video.height, video.pix_fmt = width, height, pix_fmt
    # The encoder works in the same clock as the timestamps we give it, so that they survive exactly.
    video.time_base = video.codec_context.time_base = time_base
    if encoder_options:
        video.codec_context.options = dict(encoder_options)
    for name, value in (color or {}).items():
        setattr(video.codec_context, name, value)
    if rotation:
        video.set_display_rotation(rotation)
    audio_stream = subtitle_stream = None
    if audio:
        audio_stream = out.add_stream("aac", rate=8000)
        audio_stream.layout = "mono"
    if subtitles:
        subtitle_codec = "mov_text" if path.endswith((".mp4", ".mov")) else "subrip"
        subtitle_stream = out.add_mux_stream(subtitle_codec, time_base=Fraction(1, 1000))

    if attachment:
        out.add_attachment("notes.txt", "text/plain", b"attached to the video\n")

    rng = np.random.default_rng(len(pts))
    frames, muxed_video = [], 0
    matrix = (color or {}).get("colorspace")
    value_range = (color or {}).get("color_range")

    def mux_video(packets):
        nonlocal muxed_video
        for packet in packets:
            if corrupt_packet is not None and muxed_video == corrupt_packet:
                noise = rng.integers(0, 256, packet.size, dtype=np.uint8).tobytes()
                damaged = av.Packet(noise)
                damaged.stream, damaged.pts, damaged.dts = video, packet.pts, packet.dts
                damaged.time_base = packet.time_base
                packet = damaged
            out.mux(packet)
            muxed_video += 1

    for index, timestamp in enumerate(pts):
        rgb = gradient_frame(width, height, index)
        frames.append(rgb)
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
            format=pix_fmt, dst_colorspace=matrix, dst_color_range=value_range)
        frame.pts, frame.time_base = timestamp, time_base
        mux_video(video.encode(frame))
    mux_video(video.encode(None))

    audio_packets: list[bytes] = []
    if audio_stream is not None:
        seconds = float((pts[-1] + 1) * time_base) if pts else 0.0
        samples = max(1024, int(seconds * 8000))
        tone = (0.2 * np.sin(np.arange(samples) * 0.05)).astype(np.float32)[None, :]
        for start in range(0, samples, 1024):
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, start:start + 1024]),
                                               format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts, chunk.time_base = 8000, start, Fraction(1, 8000)
            for packet in audio_stream.encode(chunk):
                audio_packets.append(bytes(packet))
                out.mux(packet)
        for packet in audio_stream.encode(None):
            audio_packets.append(bytes(packet))
            out.mux(packet)

    subtitle_packets: list[bytes] = []
    if subtitle_stream is not None:
        text = b"upscaled"
        # mov_text samples carry a 2-byte big-endian length before the text; SubRip packets are the text.
        payload = len(text).to_bytes(2, "big") + text if subtitle_codec == "mov_text" else text
        packet = av.Packet(payload)
        packet.stream, packet.pts, packet.dts, packet.duration = subtitle_stream, 0, 0, 500
        packet.time_base = Fraction(1, 1000)
        subtitle_packets.append(payload)
        out.mux(packet)
    out.close()
    return SyntheticVideo(path, frames, list(pts), time_base, audio_packets, subtitle_packets)


class NearestUpscaler:
    """A stand-in for ``Upscaler`` that repeats each pixel 4×4: exact, instant, for testing the plumbing."""

    device = "cpu"
    scale = 4

    def __init__(self, fail_at: int | None = None, error: BaseException | None = None):
        self.calls = 0  # frames upscaled so far
        self.fail_at, self.error = fail_at, error

    def output_hw(self, input_hw: tuple[int, int]) -> tuple[int, int]:
        return self.scale * input_hw[0], self.scale * input_hw[1]

    def upscale(self, image: np.ndarray) -> np.ndarray:
        return self.upscale_batch(np.asarray(image)[None])[0]

    def upscale_batch(self, frames: np.ndarray) -> np.ndarray:
        """[N, H, W, C] -> [N, 4H, 4W, C]; raises ``error`` once frame number ``fail_at`` is reached."""
        if self.fail_at is not None and self.calls + len(frames) > self.fail_at:
            raise self.error or RuntimeError(f"injected failure at frame {self.fail_at}")
        self.calls += len(frames)
        return np.repeat(np.repeat(frames, self.scale, axis=1), self.scale, axis=2)


@dataclass
class SyntheticHdrVideo:
    path: str
    pix_fmt: str
    planes: list[list[np.ndarray]]  # per frame, the coded samples of each plane (Y, Cb, Cr), uint16 or uint8
    color: dict[str, int]
    hdr: HdrMetadata


def coded_planes(frame) -> list[np.ndarray]:
    """The samples of each plane of a planar frame, without the rows' padding."""
    dtype = np.uint8 if max(c.bits for c in frame.format.components) <= 8 else np.uint16
    itemsize = np.dtype(dtype).itemsize
    return [np.frombuffer(plane, dtype).reshape(-1, plane.line_size // itemsize)[:plane.height, :plane.width]
            for plane in frame.planes]


def luma_ramp_planes(width: int, height: int, pix_fmt: str, index: int, *, chroma: bool) -> list[np.ndarray]:
    """Limited-range Y through every code once per ``width*height`` samples, shifted by ``index``, in steps of 7
    codes so that neighbours differ (a moved or blurred sample shows); Cb and Cr neutral. With ``chroma``, Cb and
    Cr are sawtooth ramps within 20 8-bit steps of neutral and Y keeps to the middle half of its range, so that
    every sample is a colour RGB can hold (the test of a colour matrix)."""
    import av

    video_format = av.VideoFormat(pix_fmt)
    bits = max(c.bits for c in video_format.components)
    step = 1 << (bits - 8)
    low, high = 16 * step, 235 * step
    if chroma:
        quarter = (high - low) // 4
        low, high = low + quarter, high - quarter
    dtype = np.uint8 if bits <= 8 else np.uint16
    luma = low + (np.arange(width * height) * 7 + index * 97) % (high - low + 1)
    planes = [luma.reshape(height, width).astype(dtype)]
    y, x = np.mgrid[0:video_format.chroma_height(height), 0:video_format.chroma_width(width)]
    for gradient in (x, y):
        swing = (gradient * 3 + index) % 40 - 20 if chroma else np.zeros_like(gradient)
        planes.append((128 * step + swing * step).astype(dtype))
    return planes


def write_hdr_test_video(
    path: str | os.PathLike,
    *,
    width: int = 32,
    height: int = 28,
    frames: int = 3,
    pix_fmt: str = "yuv420p10le",
    codec: str = "libx265",
    color: dict[str, int] | None = None,
    hdr: HdrMetadata | None = None,
    chroma: bool = False,
) -> SyntheticHdrVideo:
    """A lossless (libx265 lossless=1, or ffv1) video of ``luma_ramp_planes`` frames at 25 fps, tagged ``color``
    (default HDR10 PQ) and carrying ``hdr`` (default: TEST_MASTERING and TEST_CONTENT_LIGHT for libx265, none for
    ffv1, which has no place for it). The 32×28 default holds every 10-bit luma code; 64×56 every 12-bit one."""
    import av

    path = os.fspath(path)
    color = HDR10_PQ if color is None else color
    if hdr is None:
        hdr = HdrMetadata(TEST_MASTERING, TEST_CONTENT_LIGHT) if codec == "libx265" else HdrMetadata()
    lossless = {"libx265": {"x265-params": "lossless=1:log-level=error"}, "ffv1": {}}
    if codec not in lossless:
        raise ValueError(f"expected codec libx265 or ffv1 (lossless), got {codec!r}")
    hdr_options, note = hdr_encoder_options(codec, hdr)
    if note:
        raise ValueError(f"cannot write this test video: {note}")
    out = av.open(path, "w")
    video = out.add_stream(codec, rate=25)
    video.width, video.height, video.pix_fmt = width, height, pix_fmt
    for name, value in color.items():
        setattr(video.codec_context, name, value)
    video.codec_context.options = merge_encoder_options(lossless[codec], hdr_options)
    written = []
    for index in range(frames):
        planes = luma_ramp_planes(width, height, pix_fmt, index, chroma=chroma)
        frame = av.VideoFrame(width, height, pix_fmt)
        for target, samples in zip(coded_planes(frame), planes):
            target[...] = samples
        for name, value in color.items():
            setattr(frame, name, value)
        frame.pts = index
        written.append(planes)
        for packet in video.encode(frame):
            out.mux(packet)
    for packet in video.encode(None):
        out.mux(packet)
    out.close()
    return SyntheticHdrVideo(path, pix_fmt, written, dict(color), hdr)


class DtypeRecorder(NearestUpscaler):
    """NearestUpscaler that records the dtype of every batch it is given (to prove no 8-bit step)."""

    def __init__(self):
        super().__init__()
        self.dtypes: set = set()

    def upscale_batch(self, frames: np.ndarray) -> np.ndarray:
        self.dtypes.add(frames.dtype)
        return super().upscale_batch(frames)
