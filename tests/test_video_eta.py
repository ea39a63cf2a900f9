"""The video bar's time left counts from the first batch's end, so the engine's warm-up does not inflate it."""
from __future__ import annotations

import time

import pytest

from srgan_fast.video.eta import SteadyRate


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def encode_batch(rate: SteadyRate, clock: FakeClock, frames: int, after_s: float) -> None:
    """A batch's frames reach the encoder together, ``after_s`` after the previous batch."""
    clock.now += after_s
    for _ in range(frames):
        rate.frame_done()


@pytest.mark.parametrize("warm_up_s", [0.0, 10.0, 60.0])
def test_time_left_is_the_steady_rate_whatever_the_warm_up(warm_up_s):
    clock = FakeClock()
    rate = SteadyRate(total=20, batch=4, clock=clock)
    encode_batch(rate, clock, 4, warm_up_s + 2.0)  # the first batch: warm-up plus one batch's work
    assert rate.rate() is None and rate.text() == "warming up"
    encode_batch(rate, clock, 4, 2.0)
    # 4 frames per 2 s since the first batch, 12 frames to go: 6 s, whatever the warm-up took.
    assert rate.rate() == pytest.approx(2.0)
    assert rate.seconds_left() == pytest.approx(6.0)
    assert rate.text() == "00:06 left, 2.00 frame/s"
    encode_batch(rate, clock, 4, 2.0)
    assert rate.seconds_left() == pytest.approx(4.0)


def test_unknown_total_shows_only_the_rate_and_a_long_run_shows_hours():
    clock = FakeClock()
    rate = SteadyRate(total=None, batch=1, clock=clock)
    encode_batch(rate, clock, 1, 5.0)
    encode_batch(rate, clock, 1, 0.5)
    assert rate.seconds_left() is None and rate.text() == "2.00 frame/s"
    long = SteadyRate(total=100_000, batch=1, clock=clock)
    encode_batch(long, clock, 1, 1.0)
    encode_batch(long, clock, 1, 1.0)
    assert long.text() == "27:46:38 left, 1.00 frame/s"


def test_the_video_bar_shows_the_steady_time_left(tmp_path, capsys):
    pytest.importorskip("av")
    from srgan_fast.video import upscale_video
    from srgan_fast.video.synthetic import NearestUpscaler, write_test_video

    class SlowUpscaler(NearestUpscaler):  # slower than the bar's refresh interval (0.1 s), so it redraws
        def upscale_batch(self, frames):
            time.sleep(0.15)
            return super().upscale_batch(frames)

    src = write_test_video(tmp_path / "in.mkv", width=16, height=12, pts=list(range(0, 400, 40)))
    upscale_video(src.path, tmp_path / "out.mkv", upscaler=SlowUpscaler(), progress=True, batch_size=2)
    shown = capsys.readouterr().err
    assert "frame/s" in shown and "left" in shown, shown[-500:]
