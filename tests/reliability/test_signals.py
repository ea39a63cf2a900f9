"""Real signals to a real ``srgan-fast`` process mid-batch: it stops with the shell's status (130 SIGINT, 143
SIGTERM, 129 SIGHUP) and one line, leaves no temporary or partial file, and every output it did write is a
complete image; the inputs are untouched. SIGHUP stays ignored for a process started under ``nohup``.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image


pytestmark = [pytest.mark.native,
              pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals (SIGHUP) needed")]

# About 3 s with the tiny model on two cores, much of it in PNG encoding, so that signals land in writes too
# (the run that found temporary files left behind by SIGTERM hit them in 3 of 6 tries).
IMAGES, HEIGHT, WIDTH = 40, 96, 128
TRIES = [(signal.SIGINT, 0.0), (signal.SIGINT, 1.0), (signal.SIGTERM, 0.0), (signal.SIGTERM, 0.3),
         (signal.SIGTERM, 1.0), (signal.SIGTERM, 2.0), (signal.SIGHUP, 0.5)]


@pytest.fixture(scope="module")
def model(tiny_model_path):
    return tiny_model_path


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shots")
    for index in range(IMAGES):
        pixels = np.random.default_rng(index).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{index:02d}.png")
    return folder


def snapshot(folder):
    return {path.name: path.read_bytes() for path in folder.iterdir()}


def default_dispositions(ignored=()):
    """For preexec_fn: the child starts with default handlers whatever the test runner ignores (a background
    job ignores SIGINT), except those in ``ignored``."""
    def reset():
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN if signum in ignored else signal.SIG_DFL)
    return reset


def start(command, ignored=()):
    env = {**os.environ, "OMP_WAIT_POLICY": "passive"}
    return subprocess.Popen([sys.executable, "-m", "srgan_fast.cli", *command], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, preexec_fn=default_dispositions(ignored))


def wait_for(condition, process, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def visible_files(folder):
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".")) if folder.exists() else []


def upscale_command(shots, out, model):
    return ["upscale", str(shots), "-o", str(out), "--model", model, "--backend", "native", "--device", "cpu",
            "--tile", "auto"]


def check_outputs(out):
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # no temporary files
    written = visible_files(out)
    for path in written:
        with Image.open(path) as image:
            image.load()  # a truncated file fails here
            assert image.size == (4 * WIDTH, 4 * HEIGHT)
    return written


@pytest.mark.parametrize("signum, delay", TRIES, ids=[f"{signal.Signals(s).name}-{d}s" for s, d in TRIES])
@pytest.mark.slow
def test_a_signal_mid_batch_stops_cleanly(tmp_path, model, shots, signum, delay):
    before = snapshot(shots)
    out = tmp_path / "out"
    process = start(upscale_command(shots, out, model))
    # Timed from the first written file, so that every try lands inside the batch, past start-up.
    started = wait_for(lambda: visible_files(out), process)
    time.sleep(delay)
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert started, err
    assert "Traceback" not in err
    written = check_outputs(out)
    assert snapshot(shots) == before
    if process.returncode == 0:  # it had finished before the signal came
        assert len(written) == IMAGES
        return
    assert process.returncode == 128 + signum, err
    stops = [line for line in err.splitlines() if line.startswith("srgan-fast: stopped")]
    assert len(stops) == 1, err
    match = re.fullmatch(rf"srgan-fast: stopped by {signal.Signals(signum).name}; (\d+) of {IMAGES} images "
                         "written, no partial files left", stops[0])
    assert match, stops
    # The count can lag by the one file whose rename the signal followed.
    assert int(match[1]) <= len(written) <= int(match[1]) + 1


def test_sighup_stays_ignored_under_nohup(tmp_path, model, shots):
    out = tmp_path / "out"
    process = start(upscale_command(shots, out, model), ignored={signal.SIGHUP})
    assert wait_for(lambda: visible_files(out), process)
    process.send_signal(signal.SIGHUP)
    time.sleep(0.3)
    assert process.poll() is None  # still running
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode in (0, 143), err
    check_outputs(out)


def test_importing_srgan_fast_leaves_handlers_alone(tmp_path):
    program = ("import signal\n"
               "def mine(signum, frame): pass\n"
               "signal.signal(signal.SIGTERM, mine)\n"
               "import srgan_fast, srgan_fast.api, srgan_fast.cli.main, srgan_fast.cli.video\n"
               "assert signal.getsignal(signal.SIGTERM) is mine\n"
               "assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL\n")
    run = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120,
                         preexec_fn=default_dispositions())
    assert run.returncode == 0, run.stderr


def test_main_restores_the_handlers_it_replaced(tmp_path, model):
    from srgan_fast.cli.main import main

    def mine(signum, frame):
        raise AssertionError("not called")

    previous = signal.signal(signal.SIGHUP, mine)
    others = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
        assert main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "b.png"), "--model", model,
                     "--backend", "native", "--device", "cpu"]) == 0
        assert signal.getsignal(signal.SIGHUP) is mine
        assert {signum: signal.getsignal(signum) for signum in others} == others
    finally:
        signal.signal(signal.SIGHUP, previous)


@pytest.mark.slow
def test_video_stopped_by_sigterm_leaves_no_output_and_no_partial_file(tmp_path, model):
    pytest.importorskip("av")
    from srgan_fast.video.synthetic import write_test_video

    source = write_test_video(tmp_path / "in.mkv", width=64, height=48, pts=[i * 40 for i in range(150)])
    process = start(["video", source.path, "-o", str(tmp_path / "out.mkv"), "--codec", "ffv1", "--no-progress",
                     "--model", model, "--backend", "native", "--device", "cpu", "--tile", "8"])
    writing = wait_for(lambda: any(p.name.endswith(".partial") for p in tmp_path.iterdir()), process)
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert writing, err
    assert process.returncode == 143, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (f"srgan-fast: stopped by SIGTERM; {tmp_path / 'out.mkv'} not written, "
                                            "no partial file left")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mkv"]


def test_a_signal_while_the_temporary_file_is_created_leaves_nothing(tmp_path, monkeypatch):
    """The narrowest window: SIGTERM arrives inside mkstemp, after the file exists but before anyone holds its
    name. The signal waits until the name is held, then stops the write, and the file is removed."""
    import tempfile

    from srgan_fast.io.atomic import atomic_output
    from srgan_fast.io.signals import Stopped, stop_on_signals

    real_mkstemp = tempfile.mkstemp

    def mkstemp_then_signal(*args, **kwargs):
        created = real_mkstemp(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)
        return created

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp_then_signal)
    with pytest.raises(Stopped), stop_on_signals():
        with atomic_output(tmp_path / "out.png", suffix=".png") as tmp:
            tmp.write_bytes(b"never reached")
    assert list(tmp_path.iterdir()) == []

