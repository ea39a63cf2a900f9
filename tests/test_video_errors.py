"""Bad inputs, bad options and interrupted runs: one-line messages, non-zero CLI exits, nothing left behind."""
from __future__ import annotations

import logging
import time

import pytest

av = pytest.importorskip("av")

from srgan_fast.cli.main import main  # noqa: E402
from srgan_fast.video import VideoError, upscale_video  # noqa: E402
from srgan_fast.video import encode as encode_module  # noqa: E402
from srgan_fast.video.synthetic import NearestUpscaler, write_test_video  # noqa: E402


def leftovers(folder, keep=()):
    """Files in ``folder`` other than ``keep``: partial outputs a failed run must not leave."""
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def run(src, dst, **options):
    return upscale_video(src, dst, upscaler=options.pop("upscaler", NearestUpscaler()), progress=False, **options)


@pytest.fixture
def video(tmp_path):
    return write_test_video(tmp_path / "in.mkv", pts=[i * 40 for i in range(8)], audio=True, subtitles=True)


def test_not_a_video(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 20)
    with pytest.raises(VideoError, match=r"cannot read '.*notes\.mp4' as a video: Invalid data found"):
        run(text, tmp_path / "out.mp4")
    with pytest.raises(VideoError, match=r"input '.*missing\.mp4' does not exist"):
        run(tmp_path / "missing.mp4", tmp_path / "out.mp4")
    assert leftovers(tmp_path) == ["notes.mp4"]


def test_no_video_stream(tmp_path):
    audio_only = write_test_video(tmp_path / "sound.mp4", pts=[], audio=True)  # MP4 drops the empty video track
    with pytest.raises(VideoError, match=r"has no video stream to upscale \(found: #0 audio \(aac\)\)"):
        run(audio_only.path, tmp_path / "out.mp4")
    assert leftovers(tmp_path) == ["sound.mp4"]


def test_zero_frames(tmp_path):
    empty = write_test_video(tmp_path / "empty.mkv", pts=[], audio=True)  # a video track without a frame
    with av.open(empty.path) as container:
        assert len(container.streams.video) == 1
    with pytest.raises(VideoError, match=r"empty\.mkv' contains no decodable video frames"):
        run(empty.path, tmp_path / "out.mkv")
    assert leftovers(tmp_path) == ["empty.mkv"]


def test_corrupt_packet_skipped_with_warning_and_count(tmp_path, caplog):
    # MPEG-4 part 2, intra only: one damaged packet loses one frame and the decoder carries on.
    src = write_test_video(tmp_path / "in.mkv", codec="mpeg4", pts=[i * 40 for i in range(8)],
                           encoder_options={"g": "1"}, corrupt_packet=3)
    with caplog.at_level(logging.WARNING, logger="srgan_fast.video"):
        result = run(src.path, tmp_path / "out.mkv")
    assert result.corrupt_skipped == 1 and result.frames == 7
    with av.open(str(tmp_path / "out.mkv")) as container:
        assert [f.pts for f in container.decode(video=0)] == [0, 40, 80, 160, 200, 240, 280]
    assert "skipped corrupt video data at 0.120 s" in caplog.text
    assert "skipped 1 corrupt video packet(s)" in caplog.text


def test_corrupt_packet_stops_when_asked(tmp_path):
    src = write_test_video(tmp_path / "in.mkv", codec="mpeg4", pts=[i * 40 for i in range(8)],
                           encoder_options={"g": "1"}, corrupt_packet=3)
    with pytest.raises(VideoError, match=r"corrupt video data at 0\.120 s in .*in\.mkv' \(.*\); "
                                         r"on_corrupt='skip' \(--on-corrupt skip\) skips"):
        run(src.path, tmp_path / "out.mkv", on_corrupt="stop")
    assert leftovers(tmp_path) == ["in.mkv"]


def test_codec_the_container_cannot_hold(tmp_path, video):
    with pytest.raises(VideoError, match=r"cannot write libx264 video into a webm file: 'webm' format does not "
                                         r"support 'libx264' codec; choose another codec or output extension"):
        run(video.path, tmp_path / "out.webm")
    with pytest.raises(VideoError, match=r"cannot copy #2 subtitle \(srt\) into a mp4 file without re-encoding "
                                         r"\(.*\); write \.mkv instead, or leave it out \(--no-subtitles\)"):
        run(video.path, tmp_path / "out.mp4")
    assert leftovers(tmp_path) == ["in.mkv"]
    result = run(video.path, tmp_path / "out.mp4", copy_subtitles=False)
    assert result.frames == 8 and result.dropped == ["#2 subtitle (srt): left out as asked"]


@pytest.mark.parametrize("options, message", [
    ({"codec": "mpeg2"}, "unknown codec 'mpeg2': expected one of h264, h265, av1, ffv1, h264_nvenc"),
    ({"codec": "ffv1", "crf": 10}, "ffv1 is lossless: crf and bitrate do not apply (got crf=10, bitrate=None)"),
    ({"crf": 20, "bitrate": 10**6}, "give crf or bitrate, not both (got crf=20, bitrate=1000000)"),
    ({"pix_fmt": "rgb24"}, "libx264 cannot encode pixel format 'rgb24': expected one of yuv420p,"),
    ({"start_frame": -1}, "expected start_frame to be a non-negative integer, got -1"),
    ({"start_frame": 5, "end_frame": 5}, "expected end_frame to be an integer above start_frame=5, got 5"),
    ({"start_frame": 20}, "start_frame=20 is past the end: "),
    ({"on_corrupt": "ignore"}, "expected on_corrupt to be one of skip, stop, got 'ignore'"),
    ({"batch_size": 0}, "expected batch_size to be a positive integer, got 0"),
])
def test_bad_options(tmp_path, video, options, message):
    with pytest.raises(VideoError) as caught:
        run(video.path, tmp_path / "out.mkv", **options)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert leftovers(tmp_path) == ["in.mkv"]


def test_output_name_checks(tmp_path, video):
    with pytest.raises(VideoError, match=r"cannot tell the container format from the output name 'out\.xyz'"):
        run(video.path, tmp_path / "out.xyz")
    with pytest.raises(VideoError, match=r"output '.*in\.mkv' exists \(pass overwrite=True / --overwrite"):
        run(video.path, video.path)
    with pytest.raises(VideoError, match=r"output '.*in\.mkv' is the input itself"):
        run(video.path, video.path, overwrite=True)


def test_nvenc_runs_or_says_why(tmp_path, video):
    try:
        result = run(video.path, tmp_path / "out.mkv", codec="h264_nvenc")
    except VideoError as exc:  # no NVIDIA GPU or driver here: FFmpeg's reason, in one line
        assert str(exc).startswith("cannot start encoder h264_nvenc for 72x56 yuv420p: ") and "\n" not in str(exc)
        assert leftovers(tmp_path) == ["in.mkv"]
    else:
        assert result.frames == 8


@pytest.mark.parametrize("error", [RuntimeError("injected failure at frame 5"), KeyboardInterrupt()])
def test_failure_mid_run_leaves_nothing(tmp_path, video, error):
    """A failing upscaler (or Ctrl-C) after some frames were encoded: no output, no partial file."""
    seen_at_failure = []

    class FailingUpscaler(NearestUpscaler):
        def upscale_batch(self, frames):
            if self.calls == self.fail_at:
                time.sleep(0.3)  # let the encoder write what it has
                seen_at_failure.extend(leftovers(tmp_path, keep=["in.mkv"]))
            return super().upscale_batch(frames)

    upscaler = FailingUpscaler(fail_at=5, error=error)
    with pytest.raises(type(error)):
        run(video.path, tmp_path / "out.mkv", upscaler=upscaler, batch_size=1)
    assert upscaler.calls == 5  # frames 0-4 went through before the failure
    # The run had started writing (under a hidden partial name), and removed it.
    assert len(seen_at_failure) == 1 and seen_at_failure[0].startswith(".out.mkv.")
    assert seen_at_failure[0].endswith(".partial")
    assert leftovers(tmp_path) == ["in.mkv"]


def test_failure_while_encoding_keeps_the_previous_output(tmp_path, video, monkeypatch):
    dst = tmp_path / "out.mkv"
    dst.write_bytes(b"the previous, complete output")
    calls = 0
    original = encode_module.FrameEncoder.encode

    def failing_encode(self, *args):
        nonlocal calls
        calls += 1
        if calls == 4:
            raise OSError("disk full (injected)")
        return original(self, *args)

    monkeypatch.setattr(encode_module.FrameEncoder, "encode", failing_encode)
    with pytest.raises(OSError, match="disk full"):
        run(video.path, dst, overwrite=True)
    assert dst.read_bytes() == b"the previous, complete output"
    assert leftovers(tmp_path) == ["in.mkv", "out.mkv"]


def test_cli_success_and_failure(tmp_path, video, small_weights, capsys):
    from srgan_fast.weights import save_weights

    weights = tmp_path / "tiny.safetensors"
    save_weights(weights, small_weights.tensors, small_weights.metadata)
    dst = tmp_path / "big.mkv"
    code = main(["video", video.path, "-o", str(dst), "--model", str(weights), "--backend", "torch",
                 "--device", "cpu", "--codec", "ffv1", "--end-frame", "3", "--no-progress"])
    assert code == 0 and dst.exists()
    assert "wrote " in capsys.readouterr().err
    with av.open(str(dst)) as container:
        assert len(list(container.decode(video=0))) == 3

    notes = tmp_path / "notes.mkv"
    notes.write_text("hello")
    code = main(["video", str(notes), "-o", str(tmp_path / "x.mkv"), "--model", str(weights),
                 "--backend", "torch", "--device", "cpu", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: cannot read") and err.count("\n") == 1
    assert not (tmp_path / "x.mkv").exists()


def test_cli_bitrate_parsing(tmp_path, video, capsys):
    from srgan_fast.cli.video import _bitrate

    assert (_bitrate("8M"), _bitrate("2500k"), _bitrate("800000")) == (8_000_000, 2_500_000, 800_000)
    with pytest.raises(SystemExit) as exited:
        main(["video", video.path, "-o", str(tmp_path / "out.mp4"), "--bitrate", "fast"])
    assert exited.value.code == 2
    assert "expected a bitrate such as 8M, 2500k or 800000, got 'fast'" in capsys.readouterr().err


def test_ctrl_c_in_the_middle_leaves_nothing(tmp_path, video):
    """Ctrl-C arrives in the caller's thread while frames are being upscaled and encoded."""
    import os
    import signal

    class SlowUpscaler(NearestUpscaler):
        def upscale_batch(self, frames):
            if self.calls == 4:
                # A real SIGINT, as Ctrl-C sends: it wakes the main thread wherever it waits.
                os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            return super().upscale_batch(frames)

    upscaler = SlowUpscaler()
    # Python's own Ctrl-C handler, whatever an earlier test in this process (Ray's) left installed.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            run(video.path, tmp_path / "out.mkv", upscaler=upscaler, batch_size=1)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert 4 <= upscaler.calls < 8
    assert leftovers(tmp_path) == ["in.mkv"]
