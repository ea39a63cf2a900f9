"""HDR and 10/12-bit video: bit depth end to end, colour tags, HDR10 metadata carried or refused on one line."""
from __future__ import annotations

import logging
from fractions import Fraction

import numpy as np
import pytest

av = pytest.importorskip("av")

from srgan_fast.video import available_codecs, upscale_video  # noqa: E402
from srgan_fast.video.encode import merge_encoder_options  # noqa: E402
from srgan_fast.video.hdr import ContentLight, HdrMetadata, MasteringDisplay, hdr_encoder_options  # noqa: E402
from srgan_fast.video.synthetic import (  # noqa: E402
    HDR10_PQ,
    HLG,
    TEST_CONTENT_LIGHT,
    TEST_MASTERING,
    DtypeRecorder,
    NearestUpscaler,
    coded_planes,
    write_hdr_test_video,
    write_test_video,
)

LOSSLESS_H265 = {"x265-params": "lossless=1"}




def decoded(path) -> list:
    with av.open(str(path)) as container:
        return list(container.decode(video=0))


def tags(obj) -> dict[str, int]:
    return {name: int(getattr(obj, name)) for name in HDR10_PQ}


def stream_tags(path) -> dict[str, int]:
    with av.open(str(path)) as container:
        return tags(container.streams.video[0].codec_context)


def nearest(planes: list[np.ndarray]) -> list[np.ndarray]:
    return [np.repeat(np.repeat(plane, 4, axis=0), 4, axis=1) for plane in planes]


def hdr_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "HDR" in r.getMessage()]


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_hdr10_round_trip_keeps_depth_tags_metadata_and_every_code(tmp_path, suffix, caplog):
    src = write_hdr_test_video(tmp_path / f"in{suffix}")
    assert [coded_planes(f) for f in decoded(src.path)] and all(
        all((a == b).all() for a, b in zip(coded_planes(f), planes))
        for f, planes in zip(decoded(src.path), src.planes, strict=True))
    luma = src.planes[0][0]
    # The source itself rules out an 8-bit step: every limited-range 10-bit code, most not multiples of 4.
    assert len(np.unique(luma)) == 940 - 64 + 1 and (luma % 4 != 0).mean() > 0.7

    upscaler = DtypeRecorder()
    dst = tmp_path / f"out{suffix}"
    with caplog.at_level(logging.WARNING, logger="srgan_fast.video"):
        result = upscale_video(src.path, dst, upscaler=upscaler, codec="h265", encoder_options=LOSSLESS_H265,
                               progress=False)
    assert result.pix_fmt == "yuv420p10le" and upscaler.dtypes == {np.dtype(np.uint16)}
    assert hdr_warnings(caplog) == []
    assert stream_tags(dst) == HDR10_PQ
    frames = decoded(dst)
    assert len(frames) == len(src.planes)
    for frame, planes in zip(frames, src.planes):
        assert frame.format.name == "yuv420p10le" and tags(frame) == HDR10_PQ
        # Gray through 16-bit RGB and a lossless encoder: every sample comes back as coded, ×4 by nearest.
        for got, expected in zip(coded_planes(frame), nearest(planes), strict=True):
            np.testing.assert_array_equal(got, expected)
    assert HdrMetadata.of(frames[0]) == HdrMetadata(TEST_MASTERING, TEST_CONTENT_LIGHT)


def test_colour_comes_back_through_the_bt2020_matrix(tmp_path):
    # 4:4:4, so that only the matrix is tested (4:2:0 chroma is interpolated on the way to RGB).
    src = write_hdr_test_video(tmp_path / "in.mkv", pix_fmt="yuv444p10le", chroma=True)
    dst = tmp_path / "out.mkv"
    upscale_video(src.path, dst, upscaler=NearestUpscaler(), codec="h265", encoder_options=LOSSLESS_H265,
                  progress=False)
    for frame, planes in zip(decoded(dst), src.planes, strict=True):
        assert frame.format.name == "yuv444p10le"
        for got, expected in zip(coded_planes(frame), nearest(planes)):
            # YCbCr -> 16-bit RGB -> YCbCr rounds a colour by at most a code of 10 bits; on these frames BT.709
            # instead of BT.2020 on the way back moves luma by 9 codes, an 8-bit step by 2 to 3.
            assert np.abs(got.astype(int) - expected).max() <= 1


def test_twelve_bit_hlg_stays_twelve_bit_exactly(tmp_path, caplog):
    src = write_hdr_test_video(tmp_path / "in.mkv", width=64, height=56, frames=2, pix_fmt="yuv420p12le",
                               codec="ffv1", color=HLG)
    assert len(np.unique(src.planes[0][0])) == 3760 - 256 + 1
    dst = tmp_path / "out.mkv"
    with caplog.at_level(logging.WARNING, logger="srgan_fast.video"):
        result = upscale_video(src.path, dst, upscaler=NearestUpscaler(), codec="ffv1", progress=False)
    # Nothing to drop (HLG carries no mastering metadata), so nothing said.
    assert result.pix_fmt == "yuv420p12le" and hdr_warnings(caplog) == []
    assert stream_tags(dst) == HLG
    for frame, planes in zip(decoded(dst), src.planes, strict=True):
        assert frame.format.name == "yuv420p12le" and tags(frame) == HLG
        for got, expected in zip(coded_planes(frame), nearest(planes)):
            np.testing.assert_array_equal(got, expected)


def test_twelve_bit_to_an_encoder_without_twelve_bits_says_so(tmp_path, caplog):
    src = write_hdr_test_video(tmp_path / "in.mkv", frames=1, pix_fmt="yuv420p12le", codec="ffv1")
    with caplog.at_level(logging.WARNING, logger="srgan_fast.video"):
        result = upscale_video(src.path, tmp_path / "out.mkv", upscaler=NearestUpscaler(), codec="h264",
                               progress=False)
    assert result.pix_fmt == "yuv420p10le"
    assert ("libx264 has no 12-bit pixel format: writing yuv420p10le, 10 of the input's 12 bits (codec ffv1 keeps "
            "up to 16 bits, h265 up to 12)") in [r.getMessage() for r in caplog.records]


def test_metadata_ffv1_cannot_carry_is_one_warning_line(tmp_path, caplog):
    src = write_hdr_test_video(tmp_path / "in.mkv", frames=2)
    dst = tmp_path / "out.mkv"
    with caplog.at_level(logging.WARNING, logger="srgan_fast.video"):
        result = upscale_video(src.path, dst, upscaler=NearestUpscaler(), codec="ffv1", progress=False)
    assert hdr_warnings(caplog) == [(
        f"HDR metadata of the input dropped: mastering display and content light level (ffv1 has no option for "
        f"them and PyAV {av.__version__} cannot attach frame or stream side data; codec h265, h264 or av1 "
        f"carries them)")]
    # The picture and its HDR tags are still there; only the static metadata is missing.
    assert result.pix_fmt == "yuv420p10le" and stream_tags(dst) == HDR10_PQ
    assert HdrMetadata.of(decoded(dst)[0]) == HdrMetadata()


@pytest.mark.parametrize("codec", ["h264", "av1"])
def test_other_encoders_carry_the_metadata(tmp_path, codec, caplog):
    if codec not in available_codecs():
        pytest.skip(f"this PyAV build has no {codec} encoder")
    src = write_hdr_test_video(tmp_path / "in.mkv", frames=2)
    dst = tmp_path / "out.mkv"
    with caplog.at_level(logging.WARNING, logger="srgan_fast.video"):
        result = upscale_video(src.path, dst, upscaler=NearestUpscaler(), codec=codec, progress=False)
    assert result.pix_fmt == "yuv420p10le" and hdr_warnings(caplog) == [] and stream_tags(dst) == HDR10_PQ
    carried = HdrMetadata.of(decoded(dst)[0])
    assert carried.content_light == TEST_CONTENT_LIGHT
    # H.264 SEI has x265's units (exact); AV1 rounds chromaticities to 1/65536 and the minimum to 1/16384 cd/m².
    step = 0 if codec == "h264" else Fraction(1, 16384)
    got, want = carried.mastering, TEST_MASTERING
    pairs = [*zip(got.primaries, want.primaries), (got.white_point, want.white_point), (got.luminance, want.luminance)]
    assert all(abs(a - b) <= step for g, w in pairs for a, b in zip(g, w))


def test_eight_bit_stays_eight_bit(tmp_path):
    src = write_test_video(tmp_path / "in.mkv", codec="ffv1", pix_fmt="yuv420p")
    upscaler = DtypeRecorder()
    result = upscale_video(src.path, tmp_path / "out.mkv", upscaler=upscaler, codec="h265", progress=False)
    assert result.pix_fmt == "yuv420p" and upscaler.dtypes == {np.dtype(np.uint8)}
    assert {f.format.name for f in decoded(tmp_path / "out.mkv")} == {"yuv420p"}


def test_pix_fmt_forces_eight_bit_and_keeps_tags_and_metadata(tmp_path):
    src = write_hdr_test_video(tmp_path / "in.mkv", frames=2)
    dst = tmp_path / "out.mkv"
    result = upscale_video(src.path, dst, upscaler=NearestUpscaler(), codec="h265", pix_fmt="yuv420p",
                           progress=False)
    frames = decoded(dst)
    assert result.pix_fmt == "yuv420p" and {f.format.name for f in frames} == {"yuv420p"}
    assert stream_tags(dst) == HDR10_PQ and tags(frames[0]) == HDR10_PQ
    assert HdrMetadata.of(frames[0]) == HdrMetadata(TEST_MASTERING, TEST_CONTENT_LIGHT)


def test_encoder_option_lists_merge_key_by_key():
    hdr_options, note = hdr_encoder_options("libx265", HdrMetadata(TEST_MASTERING, TEST_CONTENT_LIGHT))
    assert note is None and hdr_options == {"x265-params": (
        "master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,50):max-cll=1000,400")}
    merged = merge_encoder_options({"x265-params": "log-level=error"}, hdr_options,
                                   {"x265-params": "lossless=1:max-cll=0,0", "preset": "slow"})
    assert merged == {"x265-params": ("log-level=error:master-display=G(13250,34500)B(7500,3000)R(34000,16000)"
                                      "WP(15635,16450)L(10000000,50):max-cll=0,0:lossless=1"), "preset": "slow"}
    svt, _ = hdr_encoder_options("libsvtav1", HdrMetadata(TEST_MASTERING, TEST_CONTENT_LIGHT))
    assert svt == {"svtav1-params": ("mastering-display=G(0.26500,0.69000)B(0.15000,0.06000)R(0.68000,0.32000)"
                                     "WP(0.31270,0.32900)L(1000.0000,0.0050):content-light=1000,400")}


def test_what_cannot_be_carried_is_named():
    luminance_only = MasteringDisplay(None, None, (Fraction(1, 200), Fraction(1000)))
    options, note = hdr_encoder_options("libx265", HdrMetadata(luminance_only, ContentLight(1000, 400),
                                                               ("HDR10+ dynamic metadata",)))
    assert options == {"x265-params": "max-cll=1000,400"}
    assert note == ("HDR metadata of the input dropped: mastering display (the input's has no primaries, and "
                    "libx265 needs both); HDR10+ dynamic metadata (only static HDR10 metadata is carried)")
    assert hdr_encoder_options("ffv1", HdrMetadata()) == ({}, None)
