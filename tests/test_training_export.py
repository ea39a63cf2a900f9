"""Export (checkpoint -> srgan_fast weights + manifest) and evaluation against bicubic, on tiny runs."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from srgan_fast.backends.torch_backend import TorchBackend, build_generator
from srgan_fast.degradation import bicubic_downscale, bicubic_upscale
from srgan_fast.metrics import gradient_energy_y, psnr_y
from srgan_fast.reference.model import Generator
from srgan_fast.weights import file_sha256, load_weights
from training import train_srresnet
from training.checkpoint import load_module_state
from training.evaluate import evaluate, most_detailed_window, validation_images
from training.evaluate import main as evaluate_main
from training.export import export

TINY = ["--batch", "2", "--crop", "32", "--workers", "0", "--precision", "fp32", "--val-every-image", "3",
        "--log-every", "1", "--val-every", "100", "--num-blocks", "2", "--channels", "8"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A phase-1 run of 3 steps on 7 generated images (3 held aside), so BN has running statistics."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models run faster on one thread
    root = tmp_path_factory.mktemp("run")
    rng = np.random.default_rng(0)
    (root / "data").mkdir()
    for i in range(7):
        Image.fromarray((rng.random((44, 52, 3)) * 255).astype(np.uint8)).save(root / "data" / f"{i}.png")
    train_srresnet.main(["--data", str(root / "data"), "--run-dir", str(root / "p1"), "--steps", "3", "--lr", "1e-2",
                         *TINY])
    yield root
    torch.set_num_threads(threads)


def _training_generator(checkpoint, dtype):
    generator = Generator(2, 8)
    generator.load_state_dict(load_module_state(checkpoint, "generator"))
    return generator.to(dtype).eval()


def test_exported_weights_give_the_training_models_outputs(run):
    checkpoint = run / "p1" / "last.safetensors"
    export(str(checkpoint), "tiny", str(run / "out"))
    loaded = build_generator(load_weights(run / "out" / "tiny.safetensors"))
    trained = _training_generator(checkpoint, torch.float32)
    assert any(float(m.running_var.sub(1).abs().max()) > 1e-3 for m in trained.modules()
               if isinstance(m, torch.nn.BatchNorm2d))  # BN really holds statistics to fold
    x = torch.rand(2, 3, 12, 10, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = _training_generator(checkpoint, torch.float64)(x.double())
        fp32_error = (trained(x).double() - reference).abs().max().item()
        export_error = (loaded(x).double() - reference).abs().max().item()
    # Folding is done in float64; the folded fp32 model may be at most 2x as far from the float64 training
    # model as the unfolded fp32 one is.
    print(f"max |error| vs float64: exported {export_error:.2e}, training model in fp32 {fp32_error:.2e}")
    assert export_error <= 2 * fp32_error + 1e-7, (export_error, fp32_error)


def test_metadata_and_manifest(run):
    checkpoint = run / "p1" / "last.safetensors"
    metadata = export(str(checkpoint), "first", str(run / "manifest_test"))
    export(str(checkpoint), "second", str(run / "manifest_test"), skip_eval=True, description="trial")
    manifest = json.loads((run / "manifest_test" / "manifest.json").read_text())["models"]
    assert sorted(manifest) == ["first", "second"] and manifest["second"]["description"] == "trial"
    for name, entry in manifest.items():
        assert entry["file"] == f"{name}.safetensors"
        assert entry["sha256"] == file_sha256(run / "manifest_test" / entry["file"])
    weights = load_weights(run / "manifest_test" / "first.safetensors")
    assert weights.metadata["architecture"] == "srresnet" and weights.metadata["training_steps"] == "3"
    assert "SRResNet: mse loss" in weights.metadata["training_recipe"] and weights.metadata["eval_images"] == "3"
    # The bicubic score in the metadata, recomputed independently over the held-aside images 0, 3, 6.
    bicubic = []
    for i in (0, 3, 6):
        hr = np.asarray(Image.open(run / "data" / f"{i}.png"))[:44, :52]
        bicubic.append(psnr_y(bicubic_upscale(bicubic_downscale(hr)), hr))
    assert metadata["eval_bicubic_psnr_y"] == f"{np.mean(bicubic):.3f}"
    assert f"validation PSNR-Y {metadata['eval_psnr_y']} dB" in manifest["first"]["description"]


def test_evaluate_scores_match_the_backend_and_crops_show_bicubic_model_hr(run, tmp_path):
    export(str(run / "p1" / "last.safetensors"), "e", str(tmp_path), skip_eval=True)
    weights = load_weights(tmp_path / "e.safetensors")
    images = validation_images([str(run / "data")], 3)
    assert [n.rsplit("/", 1)[-1] for n, _ in images] == ["0.png", "3.png", "6.png"]
    result = evaluate(build_generator(weights), images, crops_dir=str(tmp_path / "crops"), crop_size=24)
    # evaluate runs the model NCHW: the backend in that layout is the same computation, so the same bits. In
    # channels_last (the backend's default) oneDNN may pick another convolution on some CPUs (an AVX-512 Xeon
    # did), which rounds a few values to the next level: within one level in under 0.1% of the values.
    same_layout = TorchBackend(weights, "cpu", "fp32", channels_last=False)
    channels_last = TorchBackend(weights, "cpu", "fp32")
    for row, (name, hr) in zip(result["images"], images):
        lr = bicubic_downscale(hr)
        sr = same_layout.run(lr[None].copy())[0]
        assert row["psnr_y"] == pytest.approx(psnr_y(sr, hr), abs=1e-9)
        difference = np.abs(channels_last.run(lr[None].copy())[0].astype(int) - sr)
        assert difference.max() <= 1 and np.mean(difference) < 1e-3
        assert row["gradient_energy_hr"] == pytest.approx(gradient_energy_y(hr))
        strip = np.asarray(Image.open(tmp_path / "crops" / f"{name.rsplit('/', 1)[-1][:-4]}_bicubic_model_hr.png"))
        y, x = most_detailed_window(hr, 24)
        assert strip.shape == (24, 72, 3)
        np.testing.assert_array_equal(strip[:, :24], bicubic_upscale(lr)[y : y + 24, x : x + 24])
        np.testing.assert_array_equal(strip[:, 48:], hr[y : y + 24, x : x + 24])
    mean = result["mean"]
    assert mean["gradient_ratio"] == pytest.approx(mean["gradient_energy_sr"] / mean["gradient_energy_hr"])


def test_most_detailed_window_finds_the_texture():
    image = np.full((64, 64, 3), 128, np.uint8)
    image[32:, 32:] = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)
    assert most_detailed_window(image, 32) == (32, 32)


def test_evaluate_cli_on_a_checkpoint_validation_split(run, tmp_path, capsys):
    evaluate_main(["--checkpoint", str(run / "p1" / "last.safetensors"), "--val-split", "--json",
                   str(tmp_path / "scores.json")])
    out = capsys.readouterr().out
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert scores["count"] == 3 and "mean of 3 images" in out and "PSNR-Y gain over bicubic" in out
    export(str(run / "p1" / "last.safetensors"), "e", str(tmp_path), skip_eval=True)
    with pytest.raises(SystemExit, match="--val-split needs --data"):
        evaluate_main(["--model", str(tmp_path / "e.safetensors"), "--val-split"])
    with pytest.raises(SystemExit, match=r"--model: weights file not found: .*missing\.safetensors"):
        evaluate_main(["--model", str(tmp_path / "missing.safetensors"), "--hr", str(run / "data")])
