"""srgan_fast.distributed.upscale_video on a local Ray (2 CPUs): a video cut at keyframes into segments, upscaled
by two actors and joined, against the local run (frames, timestamps, colour tags, rotation, audio and subtitles);
a killed worker's segment retried; a segment that always fails leaving nothing behind; the command's --ray."""
from __future__ import annotations

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'srgan_fast[ray]')")
av = pytest.importorskip("av", reason="PyAV is not installed (pip install 'srgan_fast[video]')")

from conftest import random_generator_weights  # noqa: E402

from srgan_fast.cli import main as cli  # noqa: E402
from srgan_fast.distributed import upscale_video  # noqa: E402
from srgan_fast.distributed.segments import plan_segments  # noqa: E402
from srgan_fast.distributed.video import SEGMENT_RETRIES  # noqa: E402
from srgan_fast.distributed.worker import KILLS_ENV  # noqa: E402
from srgan_fast.video import VideoError  # noqa: E402
from srgan_fast.video import upscale_video as upscale_video_locally  # noqa: E402
from srgan_fast.video.probe import open_source  # noqa: E402
from srgan_fast.video.synthetic import BT709_TV, NearestUpscaler, write_test_video  # noqa: E402
from srgan_fast.weights import save_weights  # noqa: E402

FRAMES = 30  # 1.2 s at 25 fps
SEGMENT_SECONDS = 0.3  # with a keyframe at most every 5 frames (0.2 s): 3 or 4 segments
# Open GOPs with B-frames: frames after a keyframe in decoding order that come before it in time belong to the
# segment before; a cut that got this wrong would lose or repeat frames.
SOURCE_ENCODING = {"g": "5", "x264-params": "open-gop=1:bframes=3"}


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A source video with audio and subtitles, and its local ffv1 (lossless) run."""
    root = tmp_path_factory.mktemp("distributed_video")
    write_test_video(root / "source.mkv", pts=[i * 40 for i in range(FRAMES)], encoder_options=SOURCE_ENCODING,
                     color=BT709_TV, rotation=90, audio=True, subtitles=True)
    upscale_video_locally(root / "source.mkv", root / "local.mkv", upscaler=NearestUpscaler(), codec="ffv1",
                          progress=False)
    (root / "kills").mkdir()
    return root


@pytest.fixture(scope="module")
def tiny_model(clip):
    weights = random_generator_weights(num_blocks=1, channels=8)
    save_weights(clip / "tiny.safetensors", weights.tensors, weights.metadata)
    return clip / "tiny.safetensors"


@pytest.fixture(scope="module")
def local_ray(clip):
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {KILLS_ENV: str(clip / "kills")}})
    yield
    ray.shutdown()


def run(clip, name: str, **options):
    options = {"upscaler": NearestUpscaler(), "codec": "ffv1", "segment_seconds": SEGMENT_SECONDS, "workers": 2,
               "progress": False, **options}
    return upscale_video(clip / "source.mkv", clip / name, **options)


def frames_of(path):
    """[(pts, rgb)] of the video, decoded, and the first frame's colour tags and rotation."""
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    first = frames[0]
    look = (first.color_range, first.color_primaries, first.color_trc, first.colorspace, first.rotation)
    return [(frame.pts, frame.to_ndarray(format="rgb24")) for frame in frames], look


def copied_packets(path, kind: str):
    with av.open(str(path)) as container:
        return [(p.pts, p.dts, p.duration, bytes(p)) for p in container.demux() if p.size and p.stream.type == kind]


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_the_cut_is_at_keyframes_about_segment_seconds_apart(clip):
    source = open_source(clip / "source.mkv")
    try:
        segments, time_base = plan_segments(source, SEGMENT_SECONDS)
        source.container.seek(0)
        keyframes = {p.pts for p in source.container.demux(source.video) if p.size and p.is_keyframe}
    finally:
        source.close()
    starts = [0] + [segment.start for segment in segments[1:]]
    assert len(segments) >= 3 and segments[0].start is None and segments[-1].end is None
    assert set(starts) <= keyframes
    assert all((later - earlier) * time_base >= SEGMENT_SECONDS for earlier, later in zip(starts, starts[1:]))
    assert [segment.end for segment in segments[:-1]] == starts[1:]


@pytest.mark.slow
def test_segments_join_into_the_local_run(clip, local_ray):
    result = run(clip, "joined.mkv")
    local_frames, local_look = frames_of(clip / "local.mkv")
    frames, look = frames_of(clip / "joined.mkv")
    assert result.segments >= 3 and len(result.segment_seconds) == result.segments
    assert result.frames == len(frames) == len(local_frames) == FRAMES
    assert [pts for pts, _ in frames] == [pts for pts, _ in local_frames]
    assert all(np.array_equal(ours, theirs) for (_, ours), (_, theirs) in zip(frames, local_frames))
    assert look == local_look == (1, 1, 1, 1, 90)
    for kind in ("audio", "subtitle"):
        assert copied_packets(clip / "joined.mkv", kind) == copied_packets(clip / "local.mkv", kind) != []
    assert result.copied == ["#1 audio (aac)", "#2 subtitle (srt)"]
    assert leftovers(clip) == []


@pytest.mark.slow
def test_a_lossy_codec_keeps_the_local_timestamps_and_tags(local_ray, tmp_path):
    # MP4 in and out: its demuxer seeks by decoding time and its muxer keeps decoding times and edit lists.
    write_test_video(tmp_path / "source.mp4", pts=[i * 40 for i in range(FRAMES)], encoder_options=SOURCE_ENCODING,
                     color=BT709_TV, rotation=90, audio=True, subtitles=True)
    upscale_video_locally(tmp_path / "source.mp4", tmp_path / "local.mp4", upscaler=NearestUpscaler(), progress=False)
    result = upscale_video(tmp_path / "source.mp4", tmp_path / "joined.mp4", upscaler=NearestUpscaler(), workers=2,
                           segment_seconds=SEGMENT_SECONDS, progress=False)
    local_frames, local_look = frames_of(tmp_path / "local.mp4")
    frames, look = frames_of(tmp_path / "joined.mp4")
    assert result.segments >= 3 and result.frames == len(frames) == len(local_frames) == FRAMES
    assert [pts for pts, _ in frames] == [pts for pts, _ in local_frames] and look == local_look
    for kind in ("audio", "subtitle"):
        assert copied_packets(tmp_path / "joined.mp4", kind) == copied_packets(tmp_path / "local.mp4", kind) != []


@pytest.mark.slow
def test_a_killed_worker_s_segment_is_retried(clip, local_ray):
    (clip / "kills" / "once").touch()
    run(clip, "retried.mkv")
    assert list((clip / "kills").iterdir()) == []  # a worker took it, dying with a partial segment file written
    frames, _ = frames_of(clip / "retried.mkv")
    local_frames, _ = frames_of(clip / "local.mkv")
    assert len(frames) == FRAMES
    assert all(pts == local_pts and np.array_equal(ours, theirs)
               for (pts, ours), (local_pts, theirs) in zip(frames, local_frames))
    assert leftovers(clip) == []


@pytest.mark.slow
def test_a_segment_that_always_fails_leaves_nothing(clip, local_ray):
    with pytest.raises(VideoError, match=rf"^segment \d+ \(.+ to .+\) failed on each of {SEGMENT_RETRIES + 1} "
                       r"attempts: injected failure at frame 0$"):
        run(clip, "failed.mkv", upscaler=NearestUpscaler(fail_at=0))
    assert not (clip / "failed.mkv").exists()
    assert leftovers(clip) == []


@pytest.mark.slow
def test_a_segment_s_video_error_ends_the_run_without_retries(clip, local_ray):
    with pytest.raises(VideoError, match=r"^segment \d+ \(.+\): expected on_corrupt to be one of skip, stop, got 'x'$"):
        run(clip, "refused.mkv", on_corrupt="x")
    assert not (clip / "refused.mkv").exists() and leftovers(clip) == []


@pytest.mark.slow
def test_a_worker_that_cannot_make_its_upscaler_says_why(clip, local_ray, tiny_model):
    # On CPU workers a GPU-only backend cannot start: every worker would fail the same, so nothing is retried.
    with pytest.raises(VideoError, match=r"^segment \d+ \(.+\): its worker could not make its Upscaler: .*tensorrt"):
        run(clip, "unmade.mkv", upscaler=None, model=tiny_model, backend="tensorrt")
    assert not (clip / "unmade.mkv").exists() and leftovers(clip) == []


def test_refusals_before_any_work(clip):
    with pytest.raises(VideoError, match="expected segment_seconds to be a positive number of seconds, got 0"):
        run(clip, "never.mkv", segment_seconds=0)
    with pytest.raises(VideoError, match=r"output '.*local\.mkv' exists \(pass overwrite=True"):
        run(clip, "local.mkv")
    with pytest.raises(VideoError, match=r"cannot copy #2 subtitle \(srt\) into a mp4 file without re-encoding"):
        run(clip, "never.mp4", codec="h264")
    assert leftovers(clip) == [] and not (clip / "never.mkv").exists() and not (clip / "never.mp4").exists()


def test_a_part_of_a_video_copies_nothing_and_takes_no_frame_range(clip, tmp_path):
    with pytest.raises(VideoError, match="a pts_range part holds video only: pass copy_audio=False"):
        upscale_video_locally(clip / "source.mkv", tmp_path / "part.mkv", upscaler=NearestUpscaler(),
                              pts_range=(0, 200))
    with pytest.raises(VideoError, match=r"give a frame range or pts_range, not both \(got start_frame=2"):
        upscale_video_locally(clip / "source.mkv", tmp_path / "part.mkv", upscaler=NearestUpscaler(),
                              start_frame=2, pts_range=(0, 200), copy_audio=False, copy_subtitles=False)


@pytest.mark.parametrize("options, message", [
    (["--device", "cpu"], "--device cpu does not apply with --ray: workers run on GPUs with --gpus-per-worker"),
    (["--start-frame", "3"], "--start-frame and --end-frame do not apply with --ray: it upscales the whole video")])
def test_the_video_command_refuses_what_does_not_apply_on_ray(clip, capsys, options, message):
    assert cli.main(["video", str(clip / "source.mkv"), "-o", str(clip / "never.mkv"), "--ray", *options]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {message}") and error.count("\n") == 1


@pytest.mark.native
@pytest.mark.slow
def test_the_video_command_on_ray_equals_the_local_command(clip, local_ray, tiny_model):
    common = ["--codec", "ffv1", "--model", str(tiny_model), "--backend", "native",
              "--precision", "fp32", "--no-progress"]
    assert cli.main(["video", str(clip / "source.mkv"), "-o", str(clip / "command-local.mkv"), *common]) == 0
    assert cli.main(["video", str(clip / "source.mkv"), "-o", str(clip / "command-ray.mkv"), *common, "--ray",
                     "--segment-seconds", str(SEGMENT_SECONDS), "--workers", "2"]) == 0
    frames, look = frames_of(clip / "command-ray.mkv")
    local_frames, local_look = frames_of(clip / "command-local.mkv")
    assert [pts for pts, _ in frames] == [pts for pts, _ in local_frames] and look == local_look
    assert all(np.array_equal(ours, theirs) for (_, ours), (_, theirs) in zip(frames, local_frames))
