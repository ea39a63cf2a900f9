"""srgan-fast end to end on generated images: files, folders, 16-bit and alpha, failures in a batch."""
import argparse
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import random_generator_weights
from srgan_fast.backends import cuda_backend
from srgan_fast.cli import main, parse_size, parse_tile
from srgan_fast.imageio import read_image, write_image
from srgan_fast.weights import save_weights


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    w = random_generator_weights(1, 4)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_weights(path, w.tensors, w.metadata)
    return str(path)


def _opts(model_path):
    return ["--model", model_path, "--backend", "torch", "--device", "cpu"]


def _image(shape, dtype=np.uint8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)


def test_one_file_to_one_file(tmp_path, model_path):
    write_image(tmp_path / "in.png", _image((9, 7, 3)))
    assert main(["upscale", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), *_opts(model_path)]) == 0
    assert read_image(tmp_path / "out.png").shape == (36, 28, 3)


def test_folder_with_one_corrupt_file_keeps_going(tmp_path, model_path, capsys):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    write_image(src / "a.png", _image((8, 8, 4)))  # RGBA
    write_image(src / "sub" / "b.png", _image((6, 5, 3), np.uint16))  # 16-bit colour
    write_image(src / "c.tif", _image((5, 6, 1), np.uint16))  # 16-bit gray
    write_image(src / "d.jpg", _image((8, 8, 3)))
    good = src / "e.png"
    write_image(good, _image((8, 8, 3)))
    (src / "broken.png").write_bytes(good.read_bytes()[:60])  # truncated
    out = tmp_path / "out"
    code = main(["upscale", str(src), "-o", str(out), *_opts(model_path)])
    err = capsys.readouterr().err
    assert code == 1
    assert "broken.png: unreadable or truncated image" in err and "1 of 6 images failed" in err
    a, b, c = read_image(out / "a.png"), read_image(out / "sub" / "b.png"), read_image(out / "c.tif")
    assert a.shape == (32, 32, 4) and a.dtype == np.uint8
    assert b.shape == (24, 20, 3) and b.dtype == np.uint16
    assert c.shape == (20, 24, 1) and c.dtype == np.uint16
    assert read_image(out / "d.jpg").shape == (32, 32, 3)
    assert not (out / "broken.png").exists()
    assert not list(out.rglob("*.tmp"))


def test_existing_outputs_are_not_overwritten(tmp_path, model_path, capsys):
    write_image(tmp_path / "in.png", _image((4, 4, 3)))
    (tmp_path / "out.png").write_bytes(b"precious")
    code = main(["upscale", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), *_opts(model_path)])
    assert code == 1 and "exists (pass --overwrite" in capsys.readouterr().err
    assert (tmp_path / "out.png").read_bytes() == b"precious"


def test_decompression_bomb_is_refused(tmp_path, model_path, capsys):
    Image.new("L", (300, 300)).save(tmp_path / "big.png")
    code = main(["upscale", str(tmp_path / "big.png"), "-o", str(tmp_path / "o.png"), "--max-pixels", "1000",
                 *_opts(model_path)])
    assert code == 1 and "90000 pixels exceeds the limit of 1000" in capsys.readouterr().err


def test_missing_input_and_bad_model(tmp_path, model_path, capsys):
    assert main(["upscale", str(tmp_path / "nope.png"), "-o", str(tmp_path / "o.png"), *_opts(model_path)]) == 1
    assert "nope.png: no such file" in capsys.readouterr().err
    write_image(tmp_path / "in.png", _image((4, 4, 3)))
    assert main(["upscale", str(tmp_path / "in.png"), "-o", str(tmp_path / "o.png"), "--model", "nonesuch"]) == 2
    assert "unknown model 'nonesuch'" in capsys.readouterr().err


def test_demo_and_info_run_as_a_program(tmp_path, model_path):
    out = tmp_path / "demo.png"
    run = subprocess.run([sys.executable, "-m", "srgan_fast.cli", "demo", "-o", str(out), *_opts(model_path)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert read_image(out).shape == (256, 3 * 256 + 16, 3)
    info = subprocess.run([sys.executable, "-m", "srgan_fast.cli", "info"], capture_output=True, text=True, timeout=300)
    assert info.returncode == 0 and "torch" in info.stdout and "backends:" in info.stdout


@pytest.mark.parametrize("text, size", [("2G", 2 << 30), ("512M", 512 << 20), ("1.5GiB", 3 << 29), ("64k", 65536),
                                        ("1000000", 1_000_000), ("100 MB", 100 << 20), ("7b", 7)])
def test_sizes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "G", "2X", "-1G", "0", "1e9", "2 GiBs", "1.5.2M"])
def test_bad_sizes(text):
    with pytest.raises(argparse.ArgumentTypeError, match=rf"expected a size such as 2G, 512M, 1.5GiB or a number "
                                                         rf"of bytes, got '{text}'"):
        parse_size(text)


@pytest.mark.parametrize("text, tile", [("auto", None), ("AUTO", None), ("256", 256), ("256x384", (256, 384)),
                                        ("16×8", (16, 8)), (" 32 X 48 ", (32, 48))])
def test_tiles(text, tile):
    assert parse_tile(text) == tile


@pytest.mark.parametrize("text", ["0", "0x8", "8x0", "-8", "8x8x8", "x8", "8.5", "big", "²"])
def test_bad_tiles(text):
    with pytest.raises(argparse.ArgumentTypeError, match=rf"expected auto, .* got '{text}'"):
        parse_tile(text)


@pytest.mark.parametrize("driver, code, reason", [
    (False, "cudaErrorInsufficientDriver (CUDA driver version is insufficient for CUDA runtime version)",
     "no NVIDIA driver found"),
    (True, "cudaErrorInsufficientDriver (CUDA driver version is insufficient for CUDA runtime version)",
     "the NVIDIA driver is older than the CUDA runtime this build uses (update the driver)"),
    (True, "cudaErrorNoDevice (no CUDA-capable device is detected)", "no CUDA GPU found"),
    (True, "cudaErrorUnknown (unknown error)", "the NVIDIA driver did not start: cudaErrorUnknown (unknown error)"),
])
def test_cuda_runtime_errors_are_said_in_words(monkeypatch, driver, code, reason):
    monkeypatch.setattr(cuda_backend, "_nvidia_driver_present", lambda: driver)
    message = f"CUDA error in cudaGetDeviceCount(&count) at /build/csrc/bindings_cuda.cpp:300: {code}"
    assert cuda_backend._driver_problem(message) == reason


@pytest.mark.skipif(cuda_backend._nvidia_driver_present(), reason="this machine has an NVIDIA driver")
def test_info_without_a_driver_says_so(capsys):
    cuda_backend._probe.cache_clear()
    try:
        assert main(["info"]) == 0
    finally:
        cuda_backend._probe.cache_clear()
    cuda_line = next(line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("cuda "))
    reason = cuda_line.split(None, 1)[1]
    # Or, where the build has no CUDA at all, that reason: either way no CUDA runtime error with a build path.
    assert reason == "unavailable: no NVIDIA driver found" or reason.startswith("unavailable: srgan_fast._C "), reason


def test_sixteen_bit_png_is_lossless(tmp_path):
    image = _image((5, 7, 4), np.uint16, seed=3)
    write_image(tmp_path / "x.png", image)
    assert np.array_equal(read_image(tmp_path / "x.png"), image)
