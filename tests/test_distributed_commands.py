"""The Ray commands as a user runs them: real processes, real signals, each starting its own local Ray instance on
this machine's CPUs. SIGTERM to the driver ends an image or a video run with the one stop line and 143, what it
wrote whole and nothing half-written left; a video run killed outright (SIGKILL: no cleanup runs) leaves its
segment folder, which the next run removes; -q keeps Ray's own lines off the console; a file given twice is one
note, as locally; what Ray's threads log and its finalizers raise after a stop stays off the console until
the next run."""
from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'srgan_fast[ray]')")
av = pytest.importorskip("av", reason="PyAV is not installed (pip install 'srgan_fast[video]')")

from conftest import command_session, random_generator_weights  # noqa: E402

from srgan_fast.video.synthetic import write_test_video  # noqa: E402
from srgan_fast.weights import save_weights  # noqa: E402

pytestmark = [pytest.mark.native, pytest.mark.slow]
IMAGES = 60  # 128² each: a run of several seconds on one worker, so that a signal finds it at work
FRAMES = 100  # 4 s at 25 fps, a keyframe every 5 frames: 20 segments of 0.2 s
STARTUP_SECONDS = 300  # a local Ray instance starts in 5-30 s on a busy 2-core machine


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("ray_commands")
    weights = random_generator_weights(num_blocks=1, channels=8)
    save_weights(root / "tiny.safetensors", weights.tensors, weights.metadata)
    rng = np.random.default_rng(5)
    (root / "photos").mkdir()
    for index in range(IMAGES):
        Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)).save(root / "photos" / f"{index:02d}.png")
    write_test_video(root / "clip.mkv", width=64, height=48, pts=[i * 40 for i in range(FRAMES)],
                     encoder_options={"g": "5"})
    return root


def command(root: Path, *arguments: str) -> list[str]:
    # "local": a Ray instance of this run's own, never a cluster that something else started on this machine.
    return [sys.executable, "-m", "srgan_fast.cli", *arguments, "--model", str(root / "tiny.safetensors"),
            "--backend", "native", "--precision", "fp32", "--ray", "local"]


def wait_for(condition, process, stderr: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while not condition():
        assert process.poll() is None, f"it ended first ({process.returncode}): {stderr.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"nothing after {STARTUP_SECONDS} s: {stderr.read_text()[-3000:]}"
        time.sleep(0.05)


def hidden(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.startswith("."))


def outputs(folder: Path) -> list[Path]:
    """The images in place (pathlib's glob also matches the hidden temporary files being written)."""
    return sorted(path for path in folder.glob("*.png") if not path.name.startswith("."))


def test_sigterm_ends_an_image_run_with_the_stop_line_and_143(root):
    output, stderr = root / "stopped", root / "stopped.err"
    arguments = command(root, "upscale", str(root / "photos"), "-o", str(output), "--workers", "1")
    with command_session(arguments, stderr) as run:
        wait_for(lambda: output.exists() and any(outputs(output)), run, stderr)
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=120) == 128 + signal.SIGTERM, stderr.read_text()[-3000:]
    lines = stderr.read_text().splitlines()
    assert lines[-1] == ("srgan-fast: stopped by SIGTERM; the outputs written are complete, no partial files left; "
                         "run it again to finish"), "\n".join(lines[-60:])
    assert not any("Traceback" in line or "SIGTERM" in line for line in lines[:-1]), lines
    written = outputs(output)
    assert 0 < len(written) < IMAGES
    assert hidden(output) == []  # no temporary file, and no report: the run did not finish
    for path in written:
        with Image.open(path) as image:
            image.load()  # whole: decodes to the end
            assert image.size == (512, 512)


def video_command(root: Path, output: Path, *options: str) -> list[str]:
    return command(root, "video", str(root / "clip.mkv"), "-o", str(output), "--codec", "ffv1", "--no-progress",
                   "--segment-seconds", "0.2", *options)


def segment_written(root: Path, output: Path):
    return lambda: any(root.glob(f".{output.name}.segments.*/segment-*"))


def test_sigterm_ends_a_video_run_with_the_stop_line_143_and_no_segment_folder(root):
    output, stderr = root / "stopped.mkv", root / "stopped-video.err"
    with command_session(video_command(root, output, "--workers", "1"), stderr) as run:
        wait_for(segment_written(root, output), run, stderr)
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=120) == 128 + signal.SIGTERM, stderr.read_text()[-3000:]
    lines = stderr.read_text().splitlines()
    assert lines[-1] == f"srgan-fast: stopped by SIGTERM; {output} not written, no segment files left", \
        "\n".join(lines[-60:])
    assert not any("Traceback" in line or "SIGTERM" in line for line in lines[:-1]), lines
    assert not output.exists() and not any(root.glob(f".{output.name}*"))


def test_a_killed_video_run_s_segment_folder_is_removed_by_the_next_run(root):
    output, stderr = root / "killed.mkv", root / "killed.err"
    with command_session(video_command(root, output, "--workers", "1"), stderr) as run:
        wait_for(segment_written(root, output), run, stderr)
        run.kill()  # the driver alone, as kill -9 does; its workers end with its job
        run.wait()
    [left] = root.glob(f".{output.name}.segments.*")
    assert left.is_dir() and any(left.iterdir())
    with command_session(video_command(root, output), stderr) as run:
        assert run.wait(timeout=STARTUP_SECONDS) == 0, stderr.read_text()[-3000:]
    lines = stderr.read_text().splitlines()
    assert f"warning: removed {left}, the segment folder of an earlier run that was killed" in lines
    assert lines[-1].startswith(f"wrote {output}: {FRAMES} frames 256x192 ffv1")
    assert not left.exists() and not any(root.glob(f".{output.name}*"))


def test_quiet_keeps_ray_s_lines_off_and_a_file_given_twice_is_one_note(root):
    output, stderr, twice = root / "quiet", root / "quiet.err", root / "photos" / "00.png"
    arguments = command(root, "upscale", str(root / "photos"), str(twice), "-o", str(output), "-q")
    with command_session(arguments, stderr) as run:
        assert run.wait(timeout=STARTUP_SECONDS) == 0, stderr.read_text()[-3000:]
    lines = stderr.read_text().splitlines()
    assert lines[0] == f"note: {twice}: given more than once; upscaled once"
    assert lines[1].startswith(f"srgan-fast: {IMAGES} done, 0 skipped, 0 failed in ")
    assert len(lines) == 2, lines


STALE_THREAD = """
import logging, sys, threading
from srgan_fast.distributed.cluster import import_ray, ray_connected
from srgan_fast.io.signals import Stopped

def log_from_a_thread(text):  # as Ray Data's threads that outlive a run do
    thread = threading.Thread(target=logging.getLogger("ray.data._internal.util").warning, args=(text,))
    thread.start()
    thread.join()

class Iterator:  # as Ray Data's iterators, which shut their executor down when collected
    def __init__(self, text):
        self.text = text
    def __del__(self):
        raise ValueError(self.text)
Iterator.__module__ = Iterator.__del__.__module__ = "ray.data._internal.execution.streaming_executor"

def finalize(text):
    Iterator(text)  # collected at once

ray = import_ray()  # with Ray Data, whose logger has a console handler of its own
try:
    with ray_connected(ray, "local"):
        raise Stopped(15)
except KeyboardInterrupt:
    log_from_a_thread("logged after the stop")
    finalize("finalized after the stop")
with ray_connected(ray, "local"):
    log_from_a_thread("logged in the next run")
    finalize("finalized in the next run")
print("ended", file=sys.stderr)
"""


def test_ray_s_lines_after_a_stop_stay_off_the_console_until_the_next_run(root):
    stderr = root / "stale.err"
    with command_session([sys.executable, "-c", STALE_THREAD], stderr) as run:
        assert run.wait(timeout=STARTUP_SECONDS) == 0, stderr.read_text()[-3000:]
    text = stderr.read_text()
    assert "after the stop" not in text
    assert "logged in the next run" in text and "finalized in the next run" in text
    assert text.splitlines()[-1] == "ended"
