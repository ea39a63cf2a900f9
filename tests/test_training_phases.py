"""Both training phases on tiny models: a few steps reduce the loss, the losses are the paper's, checkpoints
resume bit-exactly, signals stop cleanly, and a missing VGG file is explained."""
from __future__ import annotations

import csv
import math
import os
import signal

import numpy as np
import pytest
import torch
from PIL import Image

from srgan_fast.reference.model import Generator
from training import train_srgan, train_srresnet
from training.common import StopFlag, make_grad_scaler
from training.losses import (PixelFeatureMatchingLoss, VggContentLoss, discriminator_loss,
                             generator_adversarial_loss)
from training.vgg import Vgg19Features

TINY = ["--batch", "2", "--crop", "32", "--workers", "0", "--precision", "fp32", "--val-every-image", "3",
        "--log-every", "1", "--val-every", "100"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # The tiny models run faster on one thread, and the results do not depend on the count.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _fixed_batch(batch=2, crop=32, seed=0):
    """Smooth random images (so that a generator can fit them) and their 2x2-box LR."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 3, crop // 8, crop // 8, generator=g)
    hr = torch.nn.functional.interpolate(coarse, size=(crop, crop), mode="bilinear", align_corners=False)
    lr = torch.nn.functional.avg_pool2d(hr, 4)
    return lr, hr


def _config(phase_defaults, **overrides):
    return dict(phase_defaults, device="cpu", precision="fp32", num_blocks=2, channels=8, steps=100, **overrides)


def _random_vgg(seed=0) -> Vgg19Features:
    """VGG19 with He-initialised convs, so that activations keep their scale through the 16 layers. Its features
    are not rescaled by 1/12.75: that factor suits ImageNet weights, whose φ5,4 activations are far larger."""
    torch.manual_seed(seed)
    vgg = Vgg19Features(feature_scale=1.0)
    for module in vgg.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            torch.nn.init.uniform_(module.bias, -0.01, 0.01)
    return vgg


def test_srresnet_steps_reduce_the_pixel_loss_on_a_fixed_batch():
    config = _config(train_srresnet.DEFAULTS, lr=1e-3, loss="mse")
    generator, optimizer = train_srresnet.build(config)
    scaler = make_grad_scaler(config)
    lr, hr = _fixed_batch()
    losses = [train_srresnet.train_step(generator, optimizer, scaler, lr, hr, config, s)["loss"] for s in range(15)]
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize("content", ["pixel_fm", "vgg"])
@pytest.mark.slow
def test_srgan_steps_reduce_content_and_discriminator_losses_on_a_fixed_batch(content):
    config = _config(train_srgan.DEFAULTS, lr=1e-3, disc_channels=8)
    torch.manual_seed(1)
    nets, optimizers = train_srgan.build(config, Generator(2, 8))
    scalers = {name: make_grad_scaler(config) for name in nets}
    loss = PixelFeatureMatchingLoss(config["fm_weight"]) if content == "pixel_fm" else VggContentLoss(_random_vgg())
    lr, hr = _fixed_batch()
    rows = [train_srgan.train_step(nets, optimizers, scalers, loss, lr, hr, config, s) for s in range(12)]
    assert rows[-1]["content"] < 0.7 * rows[0]["content"], [r["content"] for r in rows]
    assert rows[-1]["d_loss"] < rows[0]["d_loss"], [r["d_loss"] for r in rows]
    assert all(math.isfinite(r["loss"]) and r["lr"] == 1e-3 for r in rows)


def test_adversarial_losses_are_bce_with_logits_of_the_paper():
    logits = torch.tensor([-30.0, -2.0, 0.0, 1.5, 40.0])
    d = torch.sigmoid(logits.double())
    # Non-saturating generator loss: -log D(G(x)); stays finite (and large) where D is sure it is fake.
    expected_g = (-torch.log(d)).mean()
    assert torch.allclose(generator_adversarial_loss(logits).double(), expected_g, rtol=1e-6)
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-1.0, 3.0])
    expected_d = (-torch.log(torch.sigmoid(real.double()))).mean() - torch.log(1 - torch.sigmoid(fake.double())).mean()
    assert torch.allclose(discriminator_loss(real, fake).double(), expected_d, rtol=1e-6)


def test_generator_step_leaves_the_discriminator_untouched():
    config = _config(train_srgan.DEFAULTS, disc_channels=8)
    nets, optimizers = train_srgan.build(config, Generator(2, 8))
    scalers = {name: make_grad_scaler(config) for name in nets}
    lr, hr = _fixed_batch()
    captured = {}
    original_step = optimizers["discriminator"].step

    def step_and_capture(*args, **kwargs):
        result = original_step(*args, **kwargs)
        captured["weights"] = [p.detach().clone() for p in nets["discriminator"].parameters()]
        return result

    optimizers["discriminator"].step = step_and_capture
    train_srgan.train_step(nets, optimizers, scalers, PixelFeatureMatchingLoss(0.1), lr, hr, config, 0)
    # The discriminator after the whole step equals it right after its own update: the G step did not move it.
    for before, after in zip(captured["weights"], nets["discriminator"].parameters()):
        assert torch.equal(before, after)
    assert all(p.requires_grad for p in nets["discriminator"].parameters())


def _write_images(folder, count=6, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(count):
        Image.fromarray((rng.random((48, 56, 3)) * 255).astype(np.uint8)).save(folder / f"{i}.png")
    return str(folder)


def _log_rows(run_dir):
    with open(run_dir / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


def _phase1(tmp_path, data):
    run = tmp_path / "p1"
    train_srresnet.main(["--data", data, "--run-dir", str(run), "--steps", "2", "--num-blocks", "2",
                         "--channels", "8", *TINY])
    return run


@pytest.mark.parametrize("phase", ["srresnet", "srgan"])
def test_checkpoint_then_resume_gives_the_same_next_steps(tmp_path, phase):
    data = _write_images(tmp_path / "data")
    if phase == "srresnet":
        main, extra = train_srresnet.main, ["--num-blocks", "2", "--channels", "8", "--lr", "1e-3"]
    else:
        init = _phase1(tmp_path, data) / "last.safetensors"
        main, extra = train_srgan.main, ["--init", str(init), "--disc-channels", "8", "--lr-drop-at", "3"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    main(["--data", data, "--run-dir", str(straight), "--steps", "4", *extra, *TINY])
    main(["--data", data, "--run-dir", str(split), "--steps", "2", *extra, *TINY])
    main(["--data", data, "--run-dir", str(split), "--steps", "4", "--resume", *TINY])
    columns = ["step", "loss", "lr"] + (["d_loss", "adversarial", "content"] if phase == "srgan" else [])
    if phase == "srgan":  # a fresh phase-2 run first logs the scores of the generator it starts from
        first = _log_rows(straight)[0]
        assert first["step"] == "0" and first["loss"] == "" and float(first["val_grad_ratio"]) > 0
    expected = [{k: r[k] for k in columns} for r in _log_rows(straight) if r["loss"]]
    got = [{k: r[k] for k in columns} for r in _log_rows(split) if r["loss"]]
    assert [r["step"] for r in got] == ["1", "2", "3", "4"]
    assert got == expected  # the CSV holds repr-exact floats: bit-exact losses


def test_max_minutes_checkpoints_and_stops_and_is_not_saved_in_the_config(tmp_path):
    from training.checkpoint import read_checkpoint_meta

    data = _write_images(tmp_path / "data")
    run = tmp_path / "run"
    train_srresnet.main(["--data", data, "--run-dir", str(run), "--steps", "50", "--max-minutes", "1e-6",
                         "--num-blocks", "2", "--channels", "8", *TINY])
    meta = read_checkpoint_meta(run / "last.safetensors")
    assert meta["step"] == 1 and "max_minutes" not in meta["config"]
    last = _log_rows(run)[-1]
    assert last["step"] == "1" and last["val_psnr_y"]  # the stop is scored, too


def test_stop_flag_turns_sigterm_into_a_request_and_restores_handlers():
    before = signal.getsignal(signal.SIGTERM)
    with StopFlag() as stop:
        assert not stop.requested
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested
    assert signal.getsignal(signal.SIGTERM) is before


def test_without_vgg_weights_the_log_says_how_to_get_them_and_which_loss_runs(tmp_path, capsys):
    data = _write_images(tmp_path / "data")
    init = _phase1(tmp_path, data) / "last.safetensors"
    capsys.readouterr()
    train_srgan.main(["--init", str(init), "--data", data, "--run-dir", str(tmp_path / "p2"), "--steps", "1",
                      "--disc-channels", "8", *TINY])
    out = capsys.readouterr().out
    assert "no --vgg-weights given" in out and "vgg19-dcbb9e9d.pth" in out and "python -m training.vgg convert" in out
    assert "content loss: pixel_mse+feature_matching" in out
    with pytest.raises(SystemExit, match=r"--vgg-weights: VGG weights file not found: .*missing\.safetensors"):
        train_srgan.main(["--init", str(init), "--data", data, "--run-dir", str(tmp_path / "p3"), "--steps", "1",
                          "--vgg-weights", str(tmp_path / "missing.safetensors"), *TINY])


def test_init_is_required_and_must_be_a_checkpoint_or_weights(tmp_path):
    data = _write_images(tmp_path / "data")
    with pytest.raises(SystemExit, match="--init is required"):
        train_srgan.main(["--data", data, "--run-dir", str(tmp_path / "r"), *TINY])
    with pytest.raises(SystemExit, match="--init 'no_such_model' is neither a training checkpoint nor a weights"):
        train_srgan.main(["--init", "no_such_model", "--data", data, "--run-dir", str(tmp_path / "r"), *TINY])
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(SystemExit, match=r"--init '.*junk\.safetensors' is neither .* unreadable safetensors file"):
        train_srgan.main(["--init", str(tmp_path / "junk.safetensors"), "--data", data, "--run-dir",
                          str(tmp_path / "r"), *TINY])


def test_srgan_from_an_exported_file_trains_the_folded_generator(tmp_path, small_weights):
    from srgan_fast.weights import save_weights

    path = tmp_path / "w.safetensors"
    save_weights(path, small_weights.tensors, small_weights.metadata)
    generator, facts = train_srgan.init_generator(str(path))
    assert facts["batch_norm"] is False and (facts["num_blocks"], facts["channels"]) == (2, 8)
    for name, value in generator.state_dict().items():
        assert torch.equal(value, torch.from_numpy(small_weights.tensors[name]))
