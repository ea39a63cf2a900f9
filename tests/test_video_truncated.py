"""A video cut short (a download or copy stopped half way) is said so on one line naming both frame counts, and
is an error with on_corrupt='stop'; whole files of every container say nothing."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

av = pytest.importorskip("av")

from srgan_fast.cli.main import main  # noqa: E402
from srgan_fast.video import VideoError, upscale_video  # noqa: E402
from srgan_fast.video.synthetic import NearestUpscaler, write_test_video  # noqa: E402

FRAMES = 75  # at 25 fps: 3.00 s


def cut_in_half(path: str) -> Path:
    source = Path(path)
    cut = source.with_name(f"cut{source.suffix}")
    data = source.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    return cut


def run(src, dst, **options):
    return upscale_video(src, dst, upscaler=NearestUpscaler(), progress=False, **options)


@pytest.fixture(params=["mkv", "mp4"])
def truncated(request, tmp_path):
    # MP4 with its index first (faststart), as streamed files are: cut, it still opens, then runs out.
    options = {"movflags": "+faststart"} if request.param == "mp4" else None
    whole = write_test_video(tmp_path / f"whole.{request.param}", pts=[i * 40 for i in range(FRAMES)], audio=True,
                             container_options=options)
    return cut_in_half(whole.path)


def test_truncated_video_is_one_warning_naming_both_counts(truncated, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="srgan_fast.video"):
        result = run(truncated, tmp_path / f"out{truncated.suffix}")
    assert 0 < result.frames < FRAMES
    lines = [r.getMessage() for r in caplog.records if "looks truncated" in r.getMessage()]
    assert lines == [f"{str(truncated)!r} looks truncated: decoded {result.frames} frames "
                     f"({result.frames * 0.04:.2f} s), but its video stream announces 3.00 s, about {FRAMES} "
                     "frames; the output has only the frames decoded"]


def test_truncated_video_stops_when_asked(truncated, tmp_path):
    # A cut MP4 may end in a packet whose data is missing: the demuxer's corrupt flag then stops it first.
    truncation = (rf"looks truncated: decoded \d+ frames .* about {FRAMES} frames; on_corrupt='skip' "
                  r"\(--on-corrupt skip\) writes the frames there are$")
    with pytest.raises(VideoError, match=truncation if truncated.suffix == ".mkv"
                       else rf"^corrupt video data at .*cut\.mp4'|{truncation}"):
        run(truncated, tmp_path / f"out{truncated.suffix}", on_corrupt="stop")
    assert sorted(p.name for p in tmp_path.iterdir()) == [truncated.name, f"whole{truncated.suffix}"]


def test_cli_says_truncated_and_stops(tmp_path, small_weights, capsys, caplog):
    from srgan_fast.weights import save_weights

    weights = tmp_path / "tiny.safetensors"
    save_weights(weights, small_weights.tensors, small_weights.metadata)
    cut = cut_in_half(write_test_video(tmp_path / "whole.mkv", pts=[i * 40 for i in range(FRAMES)]).path)
    common = ["--model", str(weights), "--backend", "torch", "--device", "cpu", "--no-progress"]
    with caplog.at_level(logging.WARNING, logger="srgan_fast.video"):  # pytest's handler takes the CLI's lines
        assert main(["video", str(cut), "-o", str(tmp_path / "short.mkv"), *common]) == 0
    warning = [r.getMessage() for r in caplog.records if "looks truncated" in r.getMessage()]
    assert len(warning) == 1 and f"about {FRAMES} frames" in warning[0]
    assert "wrote " in capsys.readouterr().err
    assert main(["video", str(cut), "-o", str(tmp_path / "stopped.mkv"), "--on-corrupt", "stop", *common]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "looks truncated" in err and err.count("\n") == 1
    assert not (tmp_path / "stopped.mkv").exists()


def test_mp4_cut_before_its_index_is_refused_on_open(tmp_path):
    cut = cut_in_half(write_test_video(tmp_path / "whole.mp4", pts=[i * 40 for i in range(FRAMES)]).path)
    with pytest.raises(VideoError, match=r"^cannot read '.*cut\.mp4' as a video: Invalid data found"):
        run(cut, tmp_path / "out.mp4")


@pytest.mark.parametrize("name, options", [
    ("a.mkv", {"audio": True}),  # the container's duration runs on with the audio; the track's own does not
    ("b.mp4", {"audio": True}),
    ("c.mov", {}),
    ("d.webm", {"codec": "libvpx-vp9"}),
    ("e.avi", {"codec": "mpeg4"}),  # AVI's header counts time-base ticks, not frames
    ("f.mkv", {"pts": [0, 40, 120, 130, 200, 400]}),  # variable frame rate
])
def test_whole_files_say_nothing(tmp_path, caplog, name, options):
    options = {"pts": [i * 40 for i in range(30)], **options}
    src = write_test_video(tmp_path / name, **options)
    with caplog.at_level(logging.WARNING, logger="srgan_fast.video"):
        result = run(src.path, tmp_path / "out.mkv")
    assert result.frames == len(options["pts"])
    assert "truncated" not in caplog.text


def test_frame_range_and_truncation(tmp_path, caplog):
    """A range that ends before the cut reads no further and says nothing; one past the cut is told."""
    cut = cut_in_half(write_test_video(tmp_path / "whole.mkv", pts=[i * 40 for i in range(FRAMES)]).path)
    with caplog.at_level(logging.WARNING, logger="srgan_fast.video"):
        assert run(cut, tmp_path / "early.mkv", start_frame=2, end_frame=10).frames == 8
        assert "truncated" not in caplog.text
        run(cut, tmp_path / "late.mkv", start_frame=2, end_frame=FRAMES)
    assert "looks truncated" in caplog.text
