"""The video bar's time left is measured between batch ends: the engine's warm-up does not inflate it, and a
short job's batches, whose frames arrive together, give the right time left from the second batch on."""
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


def test_time_left_is_right_where_the_bar_redraws_on_a_short_job_of_large_batches():
    # The reported job: 96 frames in 6 batches of 16, 1.5 s each after a 3 s warm-up (12 s in all). The bar
    # redraws on the first frame of each batch, after the wait for it; it once showed 01:52 left at 35%.
    # (A rate per frame gave 1 frame per 1.5 s at the second batch: 01:58 left instead of 6 s.)
    clock = FakeClock()
    rate = SteadyRate(total=96, batch=16, clock=clock)
    encode_batch(rate, clock, 16, 3.0 + 1.5)
    for done in range(2, 7):
        clock.now += 1.5
        rate.frame_done()  # the first frame of batch `done`: the whole batch is computed
        assert rate.seconds_left() == pytest.approx((6 - done) * 1.5), done
        for _ in range(15):
            rate.frame_done()


def test_frames_that_arrive_one_by_one_give_the_rate_and_the_time_left_within_a_batch():
    # An encoder slower than the upscaler: frames arrive every 0.25 s, not a batch at a time.
    clock = FakeClock()
    rate = SteadyRate(total=40, batch=8, clock=clock)
    for frame in range(1, 41):
        clock.now += 0.25 + (2.0 if frame == 1 else 0.0)
        rate.frame_done()
        if frame > 8:
            true_left = (40 - frame) * 0.25
            assert rate.rate() == pytest.approx(4.0)
            assert true_left - 7 * 0.25 <= rate.seconds_left() <= true_left + 1e-9, frame  # counts a batch done


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
