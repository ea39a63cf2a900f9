"""srgan-fast end to end on generated images: files, folders, 16-bit and alpha, failures in a batch."""
import subprocess
import sys

import numpy as np
import pytest
from conftest import random_generator_weights
from PIL import Image

from srgan_fast.backends import cuda_backend
from srgan_fast.cli.main import main
from srgan_fast.io.images import read_image
from srgan_fast.io.save import write_image
from srgan_fast.weights import save_weights


@pytest.fixture(scope="module")
def model_path(tiny_model_path):
    return tiny_model_path


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
    assert "broken.png: unreadable or truncated image" in err and "srgan-fast: 5 written, 0 skipped, 1 failed in " in err
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


@pytest.mark.slow
def test_demo_and_info_run_as_a_program(tmp_path, model_path):
    out = tmp_path / "demo.png"
    run = subprocess.run([sys.executable, "-m", "srgan_fast.cli", "demo", "-o", str(out), *_opts(model_path)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert read_image(out).shape == (256, 3 * 256 + 16, 3)
    info = subprocess.run([sys.executable, "-m", "srgan_fast.cli", "info"], capture_output=True, text=True, timeout=300)
    assert info.returncode == 0 and "torch" in info.stdout and "backends:" in info.stdout


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


def test_output_size_and_tta_options(tmp_path):
    from srgan_fast import Upscaler

    weights = random_generator_weights(num_blocks=1, channels=8)
    model = tmp_path / "tiny.safetensors"
    save_weights(model, weights.tensors, weights.metadata)
    image = _image((10, 12, 3), np.uint8)
    write_image(tmp_path / "in.png", image)
    common = ["--model", str(model), "--backend", "native", "--device", "cpu"]
    assert main(["upscale", str(tmp_path / "in.png"), "-o", str(tmp_path / "s.png"), "-s", "2.5", *common]) == 0
    assert read_image(tmp_path / "s.png").shape == (25, 30, 3)
    assert main(["upscale", str(tmp_path / "in.png"), "-o", str(tmp_path / "w.png"), "--width", "18", *common]) == 0
    assert read_image(tmp_path / "w.png").shape == (15, 18, 3)
    assert main(["upscale", str(tmp_path / "in.png"), "-o", str(tmp_path / "t.png"), "--tta", *common]) == 0
    expected = Upscaler(weights, backend="native", device="cpu", tta=True)(image)
    assert np.array_equal(read_image(tmp_path / "t.png"), expected)
    with pytest.raises(SystemExit) as refused:  # a scale below 1 is refused once, as a usage error
        main(["upscale", str(tmp_path / "in.png"), "-o", str(tmp_path / "x.png"), "-s", "0.5", *common])
    assert refused.value.code == 2 and not (tmp_path / "x.png").exists()
