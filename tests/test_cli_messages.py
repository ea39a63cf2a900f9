"""Every refusal of the command line is one clean line in its own names: usage errors exit 2 in every command,
Python warnings are one ``warning:`` line, a missing package says what to install, and a source tree that shadows
the installed package is named as the cause. Checked by their text."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from srgan_fast.cli.main import main
from srgan_fast.io.images import read_image
from srgan_fast.io.save import write_image


@pytest.fixture(scope="module")
def options(tiny_model_path):
    return ["--model", tiny_model_path, "--backend", "torch", "--device", "cpu"]


def usage_error(argv, capsys) -> str:
    """The one line a usage error prints; asserts it is one line and the exit status 2."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.count("\n") == 1, err
    return err.strip()


def test_version(capsys):
    from srgan_fast import __version__

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0 and capsys.readouterr().out == f"srgan-fast {__version__}\n"


@pytest.mark.parametrize("extra, message", [
    (["--quality", "0"], "argument --quality: expected a quality from 1 to 100, got '0'"),
    (["--background", "blurple"], "argument --background: expected an opaque colour such as white, black, "
                                  "'#808080', '#888' or 'rgb(128,128,128)', got 'blurple'"),
    (["--name", "a/{stem}"], "argument --name: expected a file name from {stem} and {ext} without folders"),
    (["-s", "0.5"], "argument -s/--outscale: expected an output scale of 1 or more (e.g. 2 or 2.5), got '0.5'"),
    (["--overwrite", "--skip-existing"], "argument --skip-existing: not allowed with argument --overwrite"),
])
def test_bad_upscale_options_are_one_usage_line(tmp_path, options, capsys, extra, message):
    write_image(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8))
    line = usage_error(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "o.png"), *options, *extra], capsys)
    assert line.startswith("srgan-fast upscale: error: ") and message in line
    assert not (tmp_path / "o.png").exists()


def test_a_python_warning_is_one_warning_line(tmp_path, options, capsys):
    write_image(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8))
    assert main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "o.png"), "-s", "8", *options]) == 0
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line.startswith("warning:")] == [
        "warning: output scale 8 exceeds the model's x4: the x4 result is enlarged by Lanczos beyond it (no more "
        "detail)"]
    assert "UserWarning" not in err and ".py:" not in err


def test_alpha_into_jpeg_is_laid_over_the_background_colour(tmp_path, options, capsys):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:, :4] = [255, 255, 255, 255]  # opaque white left, fully transparent right (colour under it: black)
    write_image(tmp_path / "a.png", rgba)
    out = tmp_path / "o.jpg"
    assert main(["upscale", str(tmp_path / "a.png"), "-o", str(out), "--background", "#0000ff", "--quality", "95",
                 *options]) == 0
    assert f"warning: {out}: JPEG has no alpha channel; transparent areas laid over #0000ff" in capsys.readouterr().err
    pixels = read_image(out).astype(int)
    assert np.abs(pixels[4:-4, 20:] - [0, 0, 255]).max() <= 12  # the background, not the fill under the alpha


def test_export_onnx_without_onnx_says_what_to_install(tmp_path, capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a))
    assert main(["export-onnx", "srgan", "-o", str(tmp_path / "m.onnx"), "--dynamic"]) == 2
    assert capsys.readouterr().err == ("error: export-onnx needs the onnx package, which is not installed: pip install "
                                       "'srgan_fast[onnx]'\n")
    assert main(["build-engine", "srgan", "--onnx-only", "--save-onnx", str(tmp_path / "m.onnx")]) == 2
    assert capsys.readouterr().err == ("build-engine: build-engine --save-onnx needs the onnx package, which is not "
                                       "installed: pip install 'srgan_fast[onnx]'\n")
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("extra, message", [
    (["--end-frame", "0"], "argument --end-frame: expected a whole number of 1 or more, got '0'"),
    (["--start-frame", "-2"], "argument --start-frame: expected a whole number of 0 or more, got '-2'"),
    (["--start-frame", "9", "--end-frame", "4"], "--end-frame 4 must be above --start-frame 9 (it is the frame to "
                                                 "stop before)"),
    (["--batch-size", "0"], "argument --batch-size: expected a whole number of 1 or more, got '0'"),
    (["--codec", "mpeg1"], "argument --codec: invalid choice: 'mpeg1'"),
])
def test_bad_video_options_are_one_usage_line_in_the_commands_names(tmp_path, capsys, extra, message):
    argv = ["video", str(tmp_path / "in.mp4"), "-o", str(tmp_path / "out.mp4"), *extra]
    if "must be above" in message:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err == f"srgan-fast video: error: {message} (see srgan-fast video --help)\n"
    else:
        assert message in usage_error(argv, capsys)


def test_an_existing_video_output_is_named_with_the_cli_option(tmp_path, capsys):
    (tmp_path / "out.mp4").write_bytes(b"precious")
    assert main(["video", str(tmp_path / "in.mp4"), "-o", str(tmp_path / "out.mp4")]) == 1
    assert capsys.readouterr().err == f"error: {tmp_path / 'out.mp4'}: exists (pass --overwrite to replace it)\n"
    assert (tmp_path / "out.mp4").read_bytes() == b"precious"


def test_a_source_tree_shadowing_the_installed_package_is_named_as_the_cause(tmp_path, monkeypatch):
    import importlib.metadata

    from srgan_fast.backends import native_backend

    installed = tmp_path / "site-packages" / "srgan_fast"
    installed.mkdir(parents=True)
    (installed / "_C.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")

    class Installed:
        def locate_file(self, name):
            return tmp_path / "site-packages" / name

    def no_engine():
        raise ImportError("cannot import name '_C'")

    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: Installed())
    monkeypatch.setattr(native_backend, "_native_module", no_engine)
    native_backend._probe.cache_clear()
    try:
        reason = native_backend._probe()
    finally:
        native_backend._probe.cache_clear()
    here = native_backend.Path(native_backend.__file__).resolve().parent.parent
    assert reason == (f"srgan_fast was imported from {here}, a source tree without the built engine, instead of the "
                      f"installed package in {installed.resolve()}: run from another folder, or build it in place with "
                      "pip install -e .")


def test_the_video_summary_line_gives_time_frame_rate_and_megapixels_per_second():
    from types import SimpleNamespace

    from srgan_fast.cli.common import summary_line

    result = SimpleNamespace(path="out.mkv", frames=50, size=(1920, 1080), codec="ffv1", pix_fmt="yuv420p",
                             seconds=10.0, fps=5.0, copied=["audio"])
    assert summary_line(result, ", 2 segments") == ("wrote out.mkv: 50 frames 1920x1080 ffv1 yuv420p in 10.0 s "
                                                    "(5.00 fps, 10.4 MP/s, 2 segments); copied audio")


def test_an_unknown_model_is_a_usage_error_in_every_command(tmp_path, capsys):
    write_image(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8))
    for argv in (["demo", "-o", str(tmp_path / "d.png")], ["upscale", str(tmp_path / "a.png"), "-o",
                                                            str(tmp_path / "o.png")]):
        assert main([*argv, "--model", "nonesuch"]) == 2
        assert capsys.readouterr().err.startswith("error: unknown model 'nonesuch': expected one of srgan, srresnet")
