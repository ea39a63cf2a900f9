"""Small synthetic videos for tests and benchmarks: chosen sizes, timestamps, colour tags, audio and subtitles.

The frames are smooth colour gradients that move from frame to frame, so that lossy codecs keep them close
and a wrong colour matrix or a swapped frame shows up as a large error.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

# The colour tags of BT.709 limited-range video, as FFmpeg enum values (range, primaries, transfer, matrix).
BT709_TV = {"color_range": 1, "color_primaries": 1, "color_trc": 1, "colorspace": 1}


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
) -> SyntheticVideo:
    """Encode gradient frames at the given ``pts`` (default: 5 frames at ``rate``) into ``path``.

    ``audio`` adds a mono AAC track as long as the video; ``subtitles`` one subtitle packet (SubRip in
    Matroska, mov_text in MP4); ``attachment`` a file attached to a Matroska output. ``corrupt_packet``
    replaces the bytes of that video packet (0-based, in muxing order) with noise of the same length, as a
    damaged file would have.
    """
    import av

    path = os.fspath(path)
    if pts is None:
        step = int(round(1 / (Fraction(rate) * time_base)))
        pts = [i * step for i in range(5)]
    out = av.open(path, "w")
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

    def upscale(self, image: np.ndarray) -> np.ndarray:
        return self.upscale_batch(np.asarray(image)[None])[0]

    def upscale_batch(self, frames: np.ndarray) -> np.ndarray:
        """[N, H, W, C] -> [N, 4H, 4W, C]; raises ``error`` once frame number ``fail_at`` is reached."""
        if self.fail_at is not None and self.calls + len(frames) > self.fail_at:
            raise self.error or RuntimeError(f"injected failure at frame {self.fail_at}")
        self.calls += len(frames)
        return np.repeat(np.repeat(frames, self.scale, axis=1), self.scale, axis=2)
