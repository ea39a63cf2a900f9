"""upscale_video on small generated videos: frames, timestamps, rate, rotation, colour tags, copied audio/subtitles."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

av = pytest.importorskip("av")

from srgan_fast.video import upscale_video  # noqa: E402
from srgan_fast.video.synthetic import BT709_TV, DtypeRecorder, NearestUpscaler, write_test_video  # noqa: E402

VFR_PTS = [0, 40, 100, 120, 200, 330]  # ms: irregular gaps, as a phone or screen recording has


def video_frames(path):
    """[(pts, time_base, frame)] of the first video stream, decoded."""
    with av.open(str(path)) as container:
        return [(f.pts, f.time_base, f) for f in container.decode(video=0)]


def packets(path, kind):
    """The non-empty packets of every stream of ``kind`` as (stream index, pts, bytes), demuxed in order."""
    with av.open(str(path)) as container:
        return [(p.stream.index, p.pts, bytes(p)) for p in container.demux() if p.size and p.stream.type == kind]


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_faithful_output(tmp_path, suffix):
    src = write_test_video(tmp_path / f"in{suffix}", width=18, height=14, pts=VFR_PTS, audio=True,
                           subtitles=True, rotation=90, color=BT709_TV)
    dst = tmp_path / f"out{suffix}"
    result = upscale_video(src.path, dst, upscaler=NearestUpscaler(), progress=False)

    before, after = video_frames(src.path), video_frames(dst)
    assert result.frames == len(after) == len(before) == len(VFR_PTS)
    assert result.size == (72, 56) and all((f.width, f.height) == (72, 56) for _, _, f in after)
    # Timestamps survive exactly (VFR kept), in the container's own time base.
    assert [(pts, tb) for pts, tb, _ in after] == [(pts, tb) for pts, tb, _ in before]
    assert [float(pts * tb) for pts, tb, _ in after] == pytest.approx([t / 1000 for t in VFR_PTS])
    for _, _, frame in after:
        assert frame.rotation == 90
        assert (frame.color_range, frame.color_primaries, frame.color_trc, frame.colorspace) == (1, 1, 1, 1)
    # Audio and subtitle packets are copied byte for byte, at the same times.
    for kind in ("audio", "subtitle"):
        source_packets = packets(src.path, kind)
        assert source_packets and packets(dst, kind) == source_packets
    assert len(packets(src.path, "audio")) >= 3 and result.copied == [
        "#1 audio (aac)", f"#2 subtitle ({'mov_text' if suffix == '.mp4' else 'srt'})"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_constant_frame_rate_and_stream_tags_kept(tmp_path):
    src = write_test_video(tmp_path / "in.mp4", pts=[i * 1001 for i in range(6)], time_base=Fraction(1, 30000),
                           rate=Fraction(30000, 1001), color={"color_range": 2, "color_primaries": 9,
                                                              "color_trc": 14, "colorspace": 9}, pix_fmt="yuv420p")
    dst = tmp_path / "out.mp4"
    upscale_video(src.path, dst, upscaler=NearestUpscaler(), progress=False)
    with av.open(src.path) as a, av.open(str(dst)) as b:
        sa, sb = a.streams.video[0], b.streams.video[0]
        assert sb.average_rate == sa.average_rate == Fraction(30000, 1001)
        assert sb.frames == sa.frames == 6
        ca, cb = sa.codec_context, sb.codec_context
        # Full range, BT.2020 primaries and matrix, BT.2020 10-bit transfer: all carried into the bitstream.
        assert (cb.color_range, cb.color_primaries, cb.color_trc, cb.colorspace) == (2, 9, 14, 9)
        assert (cb.color_range, cb.color_primaries, cb.color_trc, cb.colorspace) == (
            ca.color_range, ca.color_primaries, ca.color_trc, ca.colorspace)


@pytest.mark.parametrize("color", [BT709_TV, {"color_range": 2, "colorspace": 5}, {}])
def test_pixels_converted_with_the_input_matrix(tmp_path, color):
    """Lossless in and out: the output pixels are the input's 4×4-repeated, up to YUV<->RGB rounding."""
    src = write_test_video(tmp_path / "in.mkv", width=17, height=13, codec="ffv1", pix_fmt="yuv444p", color=color)
    dst = tmp_path / "out.mkv"
    upscale_video(src.path, dst, upscaler=NearestUpscaler(), codec="ffv1", progress=False)
    for (_, _, low), (_, _, high) in zip(video_frames(src.path), video_frames(dst), strict=True):
        assert high.format.name == "yuv444p" and (high.width, high.height) == (68, 52)
        expected = np.repeat(np.repeat(low.to_ndarray(format="rgb24"), 4, 0), 4, 1).astype(int)
        # RGB -> YUV 8-bit rounding twice: a few levels at most; a wrong matrix or range moves colours by 10+.
        assert np.abs(high.to_ndarray(format="rgb24").astype(int) - expected).max() <= 4


def test_frame_range_trims_and_rebases_every_stream(tmp_path):
    pts = [i * 40 for i in range(10)]
    src = write_test_video(tmp_path / "in.mkv", pts=pts, audio=True)
    dst = tmp_path / "out.mkv"
    result = upscale_video(src.path, dst, upscaler=NearestUpscaler(), start_frame=3, end_frame=7, progress=False)
    after = video_frames(dst)
    assert result.frames == len(after) == 4
    assert [pts for pts, _, _ in after] == [0, 40, 80, 120]  # frames 3..6 moved to start at 0
    source_audio = {data: pts for _, pts, data in packets(src.path, "audio")}
    kept = packets(dst, "audio")
    assert kept and len(kept) < len(source_audio)
    for _, pts, data in kept:
        # Each kept packet is a source packet, moved by frame 3's time (120 ms), overlapping 120..280 ms.
        assert source_audio[data] - 120 == pts and -130 < pts < 160


def test_ten_bit_output_and_odd_size(tmp_path):
    src = write_test_video(tmp_path / "in.mkv", width=17, height=13, codec="ffv1", pix_fmt="yuv420p")
    dst = tmp_path / "out.mp4"
    result = upscale_video(src.path, dst, upscaler=NearestUpscaler(), pix_fmt="yuv420p10le", crf=10, progress=False)
    frames = video_frames(dst)
    assert result.pix_fmt == "yuv420p10le" and len(frames) == 5
    assert all(f.format.name == "yuv420p10le" and (f.width, f.height) == (68, 52) for _, _, f in frames)
    # The 16-bit work path keeps the picture: 4:2:0 chroma twice and x264 at crf 10 cost about a level of 8 bits
    # on average; a wrong conversion (swscale garbles odd-width 4:2:0 -> rgb48le) is off by tens of levels.
    for (_, _, low), (_, _, high) in zip(video_frames(src.path), frames, strict=True):
        expected = np.repeat(np.repeat(low.to_ndarray(format="gbrp16le"), 4, 0), 4, 1).astype(int)
        error = np.abs(high.to_ndarray(format="gbrp16le").astype(int) - expected) / 257
        assert error.mean() < 3 and np.percentile(error, 99) < 20


@pytest.mark.parametrize("codec", ["h265", "av1", "ffv1"])
def test_other_codecs(tmp_path, codec):
    src = write_test_video(tmp_path / "in.mp4", pts=[0, 40, 80])
    dst = tmp_path / ("out.mkv" if codec == "ffv1" else "out.mp4")
    result = upscale_video(src.path, dst, upscaler=NearestUpscaler(), codec=codec, progress=False)
    frames = video_frames(dst)
    assert len(frames) == result.frames == 3
    assert [p * tb for p, tb, _ in frames] == [p * tb for p, tb, _ in video_frames(src.path)]
    with av.open(str(dst)) as container:
        assert container.streams.video[0].codec_context.codec.id == av.Codec(result.codec, "w").id


def test_real_upscaler_torch_backend(tmp_path, small_weights):
    from srgan_fast.api import Upscaler
    from srgan_fast.weights import save_weights

    weights = tmp_path / "tiny.safetensors"
    save_weights(weights, small_weights.tensors, small_weights.metadata)
    src = write_test_video(tmp_path / "in.mkv", width=12, height=10, codec="ffv1", pix_fmt="yuv444p",
                           pts=[0, 40, 90], audio=True)
    dst = tmp_path / "out.mkv"
    result = upscale_video(src.path, dst, model=str(weights), backend="torch", device="cpu", codec="ffv1",
                           pix_fmt="yuv444p", batch_size=2, progress=False)
    upscaler = Upscaler(str(weights), backend="torch", device="cpu")
    after = video_frames(dst)
    assert result.frames == len(after) == 3 and [p for p, _, _ in after] == [0, 40, 90]
    assert packets(dst, "audio") == packets(src.path, "audio")
    for (_, _, low), (_, _, high) in zip(video_frames(src.path), after):
        expected = upscaler.upscale(low.to_ndarray(format="rgb24")).astype(int)
        assert np.abs(high.to_ndarray(format="rgb24").astype(int) - expected).max() <= 4


def test_ten_bit_input_stays_ten_bit_and_is_upscaled_at_sixteen_bits(tmp_path):
    # Six frames: FFmpeg 8.1's auto-threaded swscale garbled most 10-bit frames this small; the pipeline must not.
    src = write_test_video(tmp_path / "in.mkv", codec="ffv1", pix_fmt="yuv444p10le", pts=[i * 40 for i in range(6)])
    upscaler = DtypeRecorder()
    result = upscale_video(src.path, tmp_path / "out.mkv", upscaler=upscaler, codec="ffv1", progress=False)
    assert result.pix_fmt == "yuv444p10le" and upscaler.dtypes == {np.dtype(np.uint16)}
    for (_, _, low), (_, _, high) in zip(video_frames(src.path), video_frames(tmp_path / "out.mkv"), strict=True):
        assert high.format.name == "yuv444p10le"
        expected = np.repeat(np.repeat(low.to_ndarray(format="gbrp16le"), 4, 0), 4, 1).astype(int)
        # 10-bit 4:4:4 -> 16-bit RGB -> 10-bit 4:4:4: within a couple of 10-bit steps (64 in 16-bit units).
        assert np.abs(high.to_ndarray(format="gbrp16le").astype(int) - expected).max() <= 2 * 64


def test_frame_encoder_converts_every_frame_exactly(tmp_path):
    """RGB -> 10-bit YUV of small noisy frames, losslessly encoded, decodes to one fixed single-threaded conversion.

    FFmpeg 8.1's auto-threaded swscale corrupted bands of such frames at random; FrameEncoder must not.
    """
    from srgan_fast.video.encode import ENCODERS, FrameEncoder, FrameLook, add_video_stream

    rng = np.random.default_rng(7)
    frames = [rng.integers(0, 65536, (56, 72, 3), dtype=np.uint16) for _ in range(40)]
    look = FrameLook(color_range=1, color_primaries=1, color_trc=1, colorspace=1, display_matrix=None)
    with av.open(str(tmp_path / "out.mkv"), "w") as output:
        stream = add_video_stream(output, ENCODERS["ffv1"], width=72, height=56, pix_fmt="yuv444p10le",
                                  time_base=Fraction(1, 1000), rate=Fraction(25), look=look, options={})
        encoder = FrameEncoder(output, stream, look)
        for index, rgb in enumerate(frames):
            encoder.encode(rgb, 40 * index, 40, Fraction(1, 1000))
        encoder.finish()
    with av.open(str(tmp_path / "out.mkv")) as container:
        decoded = [planes(f) for f in container.decode(video=0)]
    assert len(decoded) == len(frames)
    for rgb, yuv in zip(frames, decoded):
        reference = av.VideoFrame.from_ndarray(rgb, format="rgb48le").reformat(
            format="yuv444p10le", dst_colorspace=1, dst_color_range=1, threads=1)
        np.testing.assert_array_equal(yuv, planes(reference))


def planes(frame):
    """[3, H, W] uint16 samples of a 16-bit-container planar frame, without the rows' padding."""
    return np.stack([np.frombuffer(p, np.uint16).reshape(-1, p.line_size // 2)[:p.height, :p.width]
                     for p in frame.planes])


def test_rgb_input_to_yuv_output(tmp_path):
    """An RGB (bgr0) input: YUV output is not tagged with the RGB matrix, and its pixels match."""
    src = write_test_video(tmp_path / "in.mkv", codec="ffv1", pix_fmt="bgr0", pts=[0, 40, 80],
                           color={"colorspace": 0})
    with av.open(src.path) as container:
        assert container.streams.video[0].codec_context.colorspace == 0  # AVCOL_SPC_RGB
    dst = tmp_path / "out.mkv"
    result = upscale_video(src.path, dst, upscaler=NearestUpscaler(), codec="ffv1", pix_fmt="yuv444p",
                           progress=False)
    assert result.frames == 3
    for (_, _, low), (_, _, high) in zip(video_frames(src.path), video_frames(dst), strict=True):
        assert high.format.name == "yuv444p" and high.colorspace == 2  # unspecified, not "RGB"
        expected = np.repeat(np.repeat(low.to_ndarray(format="rgb24"), 4, 0), 4, 1).astype(int)
        assert np.abs(high.to_ndarray(format="rgb24").astype(int) - expected).max() <= 3


def test_streams_not_copied_are_reported(tmp_path, caplog):
    import logging

    src = write_test_video(tmp_path / "in.mkv", pts=[0, 40], audio=True, attachment=True)
    with caplog.at_level(logging.WARNING, logger="srgan_fast.video"):
        result = upscale_video(src.path, tmp_path / "out.mkv", upscaler=NearestUpscaler(), copy_audio=False,
                               progress=False)
    assert result.dropped == ["#1 audio (aac): left out as asked",
                              "#2 attachment (notes.txt): attachment streams are not copied"]
    assert "dropped stream #2 attachment" in caplog.text and "left out as asked" not in caplog.text


def test_top_level_names():
    import srgan_fast
    from srgan_fast.video import available_codecs

    assert srgan_fast.upscale_video is upscale_video
    # This PyAV build's encoders: the software ones are always there; NVENC only where FFmpeg was built with it.
    assert {"h264", "h265", "av1", "ffv1"} <= set(available_codecs())
    assert set(available_codecs().values()) <= set(av.codecs_available)


def test_outscale_resizes_every_frame_to_even_sides(tmp_path):
    """-s/--width/--height in video: the model's result resized, sides rounded down to even for 4:2:0."""
    from conftest import random_generator_weights
    from srgan_fast.weights import save_weights

    weights = random_generator_weights(num_blocks=1, channels=8)
    model = tmp_path / "tiny.safetensors"
    save_weights(model, weights.tensors, weights.metadata)
    src = write_test_video(tmp_path / "in.mkv", width=20, height=14)
    result = upscale_video(src.path, tmp_path / "out.mkv", model=str(model), backend="native", device="cpu",
                           outscale=2.3, progress=False)
    assert result.size == (46, 32) and result.frames == len(src.frames)  # 20x14 x2.3 = 46x32.2 -> 46x32
    width = upscale_video(src.path, tmp_path / "w.mkv", model=str(model), backend="native", device="cpu", width=31,
                          progress=False)
    assert width.size == (30, 22)  # 31 x round(21.7) -> even sides
