"""``srgan-fast upscale`` over folders of other people's files: every broken file is one error line and the batch
goes on; hidden files, temporary files and the output folder are never taken as inputs; bad options are one
line. Every file is made here; the model is a tiny random one, run in-process on the native backend.
"""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import png
import pytest
from conftest import noise_image as noise
from PIL import Image

from srgan_fast.api import Upscaler
from srgan_fast.cli.main import main
from srgan_fast.io.images import load_image, read_image
from srgan_fast.io.save import write_image

pytestmark = pytest.mark.native


@pytest.fixture(scope="module")
def options(tiny_model_path):
    return ["--model", tiny_model_path, "--backend", "native", "--device", "cpu"]


def encoded(array, fmt, **save_options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt, **save_options)
    return buffer.getvalue()


def png16_with_corrupt_zlib_stream(height=24, width=20) -> bytes:
    """A valid 16-bit RGB PNG (written by pypng) whose IDAT payload has bytes flipped, with the CRC made right
    again, so that only the zlib stream is wrong."""
    rows = (np.arange(height * width * 3).reshape(height, width * 3) * 97 % 65536).astype(np.uint16)
    buffer = io.BytesIO()
    png.Writer(width, height, bitdepth=16, greyscale=False).write(buffer, rows.tolist())
    data = bytearray(buffer.getvalue())
    position = 8
    while True:
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        if kind == b"IDAT":
            break
        position += 12 + length
    payload = position + 8
    for index in range(payload + 10, payload + length - 6, 7):
        data[index] ^= 0xFF
    crc = zlib.crc32(bytes(data[position + 4:payload + length]))  # over the chunk type and payload
    data[payload + length:payload + length + 4] = struct.pack(">I", crc)
    return bytes(data)


def broken_corpus() -> dict[str, bytes]:
    """File name -> contents, each one unreadable in its own way."""
    good_png, good_jpeg = encoded(noise(32, 32), "PNG"), encoded(noise(32, 32), "JPEG")
    corpus = {"empty.png": b"", "corrupt_zlib_16bit.png": png16_with_corrupt_zlib_stream(),
              "text.jpg": b"not a picture at all\n" * 10}
    for cut in (8, 33, 60, len(good_png) // 2):  # signature only, IHDR only, inside IDAT, halfway
        corpus[f"png_cut_at_{cut}.png"] = good_png[:cut]
    for cut in (2, 100, len(good_jpeg) // 2, len(good_jpeg) - 2):
        corpus[f"jpeg_cut_at_{cut}.jpg"] = good_jpeg[:cut]
    return corpus


def snapshot(folder):
    return {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def hidden_or_temporary(folder):
    return [path for path in folder.rglob("*") if path.name.startswith(".") or path.suffix in (".tmp", ".partial")]


def error_lines(err):
    return [line for line in err.splitlines() if line.startswith("error:")]


def test_every_broken_file_is_one_error_line_and_the_batch_goes_on(tmp_path, options, capsys):
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    corpus = broken_corpus()
    for name, data in corpus.items():
        (src / name).write_bytes(data)
    write_image(src / "one_pixel.png", noise(1, 1))
    Image.new("CMYK", (8, 6), (10, 80, 160, 20)).save(src / "cmyk.jpg")
    write_image(src / "zz_good.png", noise(10, 12))  # last in the batch
    before = snapshot(src)

    code = main(["upscale", str(src), "-o", str(out), *options])
    err = capsys.readouterr().err

    assert code == 1
    errors = error_lines(err)
    assert len(errors) == len(corpus), err
    for name in corpus:
        assert sum(f"{src / name}:" in line for line in errors) == 1, (name, err)
    assert f"srgan-fast: 3 written, 0 skipped, {len(corpus)} failed in " in err
    assert "Traceback" not in err
    assert read_image(out / "one_pixel.png").shape == (4, 4, 3)
    assert load_image(out / "cmyk.jpg").frames[0].shape == (24, 32, 3)
    assert read_image(out / "zz_good.png").shape == (40, 48, 3)
    assert f"wrote {out / 'zz_good.png'}" in err
    assert sorted(p.name for p in out.iterdir()) == ["cmyk.jpg", "one_pixel.png", "zz_good.png"]
    assert hidden_or_temporary(out) == []
    assert snapshot(src) == before


def test_failures_inside_the_upscaler_are_per_file(tmp_path, options, capsys, monkeypatch):
    """A bare MemoryError (as NumPy raises) and an exception of no expected type: one line each, batch goes on."""
    failures = {(5, 5): MemoryError(), (6, 6): RuntimeError("engine lost its way")}
    real_upscale = Upscaler.upscale

    def upscale(self, image, **kwargs):
        if image.shape[:2] in failures:
            raise failures[image.shape[:2]]
        return real_upscale(self, image, **kwargs)

    monkeypatch.setattr(Upscaler, "upscale", upscale)
    write_image(tmp_path / "a.png", noise(5, 5))
    write_image(tmp_path / "b.png", noise(6, 6))
    write_image(tmp_path / "c.png", noise(7, 7))
    code = main(["upscale", str(tmp_path / "a.png"), str(tmp_path / "b.png"), str(tmp_path / "c.png"),
                 "-o", str(tmp_path / "out"), "--memory-budget", "64M", *options])
    err = capsys.readouterr().err
    assert code == 1
    assert error_lines(err) == [
        (f"error: {tmp_path / 'a.png'}: out of memory with a memory budget of 64.0 MiB: lower it with "
         "--memory-budget or pass a smaller --tile"),
        f"error: {tmp_path / 'b.png'}: RuntimeError: engine lost its way"]
    assert read_image(tmp_path / "out" / "c.png").shape == (28, 28, 3)


def test_an_animation_to_a_still_format_is_a_per_file_error(tmp_path, options, capsys):
    frames = [Image.fromarray(noise(6, 6, seed=seed)) for seed in range(3)]
    frames[0].save(tmp_path / "moving.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    write_image(tmp_path / "still.png", noise(6, 6))
    out = tmp_path / "out"
    code = main(["upscale", str(tmp_path / "moving.gif"), str(tmp_path / "still.png"), "-o", str(out),
                 "--format", "jpg", *options])
    errors = error_lines(capsys.readouterr().err)
    assert code == 1
    assert len(errors) == 1 and errors[0].startswith(f"error: {out / 'moving.jpg'}: the source has 3 frames")
    assert read_image(out / "still.jpg").shape == (24, 24, 3)
    assert hidden_or_temporary(out) == []


def test_hidden_files_and_folders_are_not_inputs(tmp_path, options, capsys):
    src = tmp_path / "src"
    (src / ".cache").mkdir(parents=True)
    write_image(src / "visible.png", noise(6, 6))
    write_image(src / ".cache" / "thumb.png", noise(6, 6))
    write_image(src / ".dotfile.png", noise(6, 6))
    (src / ".visible.png.k2j4x9q1.png").write_bytes(b"\x89PNG\r\n")  # a temporary file left by a killed run
    out = tmp_path / "out"
    assert main(["upscale", str(src), "-o", str(out), *options]) == 0
    assert "error" not in capsys.readouterr().err
    assert [p.relative_to(out).as_posix() for p in out.rglob("*")] == ["visible.png"]


def test_the_output_folder_inside_the_input_folder_is_not_an_input(tmp_path, options, capsys, monkeypatch):
    shots = tmp_path / "shots"
    shots.mkdir()
    write_image(shots / "a.png", noise(6, 6))
    write_image(shots / "b.jpg", noise(6, 6))
    monkeypatch.chdir(shots)
    assert main(["upscale", ".", "-o", "out", *options]) == 0
    # Again, naming the same folders another way: the results of the first run must not become inputs.
    assert main(["upscale", str(shots), "-o", "out", "--overwrite", *options]) == 0
    monkeypatch.chdir(tmp_path)
    assert main(["upscale", "shots", "-o", str(shots / "out"), "--overwrite", *options]) == 0
    err = capsys.readouterr().err
    assert "error" not in err and err.count(f"wrote {shots / 'out' / 'a.png'}") == 1
    assert sorted(p.relative_to(shots).as_posix() for p in shots.rglob("*")) == [
        "a.png", "b.jpg", "out", "out/a.png", "out/b.jpg"]


def test_a_folder_without_images_is_an_error_line(tmp_path, options, capsys):
    empty, full = tmp_path / "empty", tmp_path / "full"
    empty.mkdir()
    full.mkdir()
    write_image(empty / ".hidden.png", noise(4, 4))
    write_image(full / "a.png", noise(4, 4))
    code = main(["upscale", str(empty), str(full), "-o", str(tmp_path / "out"), *options])
    errors = error_lines(capsys.readouterr().err)
    assert code == 1
    assert len(errors) == 1 and errors[0].startswith(f"error: {empty}: no images found (looked for .")
    assert read_image(tmp_path / "out" / "full" / "a.png").shape == (16, 16, 3)  # several folders keep their names


@pytest.mark.parametrize("inputs, received", [(["a.png", "b.png"], "got 2 inputs"),
                                              (["folder"], "got the folder")])
def test_an_output_file_name_needs_one_input_file(tmp_path, options, capsys, inputs, received):
    write_image(tmp_path / "a.png", noise(4, 4))
    write_image(tmp_path / "b.png", noise(4, 4))
    (tmp_path / "folder").mkdir()
    write_image(tmp_path / "folder" / "c.png", noise(4, 4))
    code = main(["upscale", *(str(tmp_path / name) for name in inputs), "-o", str(tmp_path / "x.png"), *options])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith(f"error: -o {tmp_path / 'x.png'} names a file, which takes "
                                                   f"one input file; {received}")
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("option, value, accepted", [
    ("--tile", "0", "tile must be 'auto', N or HxW (e.g. 256 or 256x384)"),
    ("--tile", "8x0", "tile must be 'auto', N or HxW (e.g. 256 or 256x384)"),
    ("--tile", "-3", "tile must be 'auto', N or HxW (e.g. 256 or 256x384)"),
    ("--memory-budget", "64Q", "expected a positive size in bytes such as 2G, 512M, 1.5GiB or 3000000"),
    ("--memory-budget", "0", "expected a positive size in bytes such as 2G, 512M, 1.5GiB or 3000000"),
])
def test_bad_option_values_are_refused_in_one_line(tmp_path, options, capsys, option, value, accepted):
    write_image(tmp_path / "a.png", noise(4, 4))
    with pytest.raises(SystemExit) as exit_info:
        main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "out.png"), *options, f"{option}={value}"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.count("\n") == 1
    assert f"argument {option}: {accepted}" in err and f"got {value!r}" in err
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("extra", [["--tile", "auto"], ["--tile", "3"], ["--tile", "3x5"],
                                   ["--memory-budget", "64M"], ["--memory-budget", "1.5GiB"]])
def test_tile_and_memory_budget_values_are_accepted(tmp_path, options, capsys, extra):
    image = noise(9, 11)
    write_image(tmp_path / "a.png", image)
    assert main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "out.png"), *options, *extra]) == 0
    untiled = Upscaler(options[1], backend="native", device="cpu").upscale(image).astype(int)
    assert np.abs(read_image(tmp_path / "out.png") - untiled).max() <= 1  # tiles differ by float rounding only
    assert f"wrote {tmp_path / 'out.png'}" in capsys.readouterr().err


def test_link_loops_broken_links_and_links_back_up_are_one_error_line_each(tmp_path, options, capsys):
    """A link loop once aborted the whole batch with Path.resolve's RuntimeError; a link to a folder holding it
    must not be walked round forever. Links to folders elsewhere are followed."""
    src, out, elsewhere = tmp_path / "src", tmp_path / "out", tmp_path / "elsewhere"
    (src / "sub").mkdir(parents=True)
    elsewhere.mkdir()
    write_image(src / "good.png", noise(5, 6))
    write_image(elsewhere / "far.png", noise(4, 4))
    (src / "a.png").symlink_to("b.png")
    (src / "b.png").symlink_to("a.png")
    (src / "dangling.png").symlink_to("nothing.png")
    (src / "up").symlink_to("..")
    (src / "sub" / "back").symlink_to("..")
    (src / "photos").symlink_to(elsewhere)

    code = main(["upscale", str(src), "-o", str(out), *options])
    err = capsys.readouterr().err

    assert code == 1 and "Traceback" not in err
    round_forever = "a folder it is inside; not followed (it would go round forever)"
    assert error_lines(err) == [
        f"error: {src / 'up'}: a link back to {tmp_path.resolve()}, {round_forever}",
        f"error: {src / 'a.png'}: a symbolic link loop (it leads back to itself through b.png)",
        f"error: {src / 'b.png'}: a symbolic link loop (it leads back to itself through a.png)",
        f"error: {src / 'dangling.png'}: a broken symbolic link (to nothing.png, which does not exist)",
        f"error: {src / 'sub' / 'back'}: a link back to {src.resolve()}, {round_forever}"]
    assert read_image(out / "good.png").shape == (20, 24, 3)
    assert read_image(out / "photos" / "far.png").shape == (16, 16, 3)
    assert "srgan-fast: 2 written, 0 skipped, 5 failed in " in err


def test_inputs_that_are_not_there_are_counted_as_failed(tmp_path, options, capsys):
    write_image(tmp_path / "good.png", noise(4, 4))
    (tmp_path / "loop.png").symlink_to("loop.png")
    code = main(["upscale", str(tmp_path / "missing.png"), "-o", str(tmp_path / "x.png"), *options])
    err = capsys.readouterr().err
    assert code == 1
    assert error_lines(err) == [f"error: {tmp_path / 'missing.png'}: no such file or folder"]
    assert "srgan-fast: 0 written, 0 skipped, 1 failed in " in err

    code = main(["upscale", str(tmp_path / "loop.png"), str(tmp_path / "missing.png"), str(tmp_path / "good.png"),
                 "-o", str(tmp_path / "out"), *options])
    err = capsys.readouterr().err
    assert code == 1
    assert error_lines(err) == [
        f"error: {tmp_path / 'loop.png'}: a symbolic link loop (it leads back to itself through loop.png)",
        f"error: {tmp_path / 'missing.png'}: no such file or folder"]
    assert "srgan-fast: 1 written, 0 skipped, 2 failed in " in err
    assert read_image(tmp_path / "out" / "good.png").shape == (16, 16, 3)


def test_an_unreadable_file_is_permission_denied(tmp_path, options, capsys, monkeypatch):
    import builtins
    import errno
    import os

    import srgan_fast.io.images

    write_image(tmp_path / "locked.png", noise(4, 4))
    write_image(tmp_path / "open.png", noise(4, 4))
    (tmp_path / "locked.png").chmod(0)
    if os.geteuid() == 0:  # root reads a mode-000 file: have its open fail as everyone else's does
        def open_as_a_user(path, *args, **kwargs):
            if os.stat(path).st_mode & 0o777 == 0:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return builtins.open(path, *args, **kwargs)
        monkeypatch.setattr(srgan_fast.io.images, "open", open_as_a_user, raising=False)
    code = main(["upscale", str(tmp_path / "locked.png"), str(tmp_path / "open.png"), "-o", str(tmp_path / "out"),
                 *options])
    err = capsys.readouterr().err
    assert code == 1
    assert error_lines(err) == [f"error: {tmp_path / 'locked.png'}: permission denied (this user may not read it)"]
    assert read_image(tmp_path / "out" / "open.png").shape == (16, 16, 3)


@pytest.mark.parametrize("option, value, message", [
    ("--width", "2000000", "a 2000000x1666667 output (width=2000000) of a 24x20 uint8 RGB input needs "),
    ("-s", "1e9", "a 24000000000x20000000000 output (outscale=1e+09) of a 24x20 uint8 RGB input needs "),
])
def test_an_absurd_output_size_is_refused_per_file_before_the_network_runs(tmp_path, options, capsys, monkeypatch,
                                                                          option, value, message):
    monkeypatch.setattr(Upscaler, "_upscale_channels", lambda *args: pytest.fail("the network ran"))
    write_image(tmp_path / "a.png", noise(20, 24))
    code = main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "out.png"), *options, option, value])
    err = capsys.readouterr().err
    assert code == 1 and "warning:" not in err
    errors = error_lines(err)
    assert len(errors) == 1 and errors[0].startswith(f"error: {tmp_path / 'a.png'}: {message}"), err
    assert "of memory available; at most about " in errors[0]
    assert not (tmp_path / "out.png").exists()


def test_a_folder_that_cannot_be_listed_is_an_error_line(tmp_path, options, capsys, monkeypatch):
    """os.walk skipped it in silence; its files are not done, so the run says so and fails."""
    import errno
    import os

    src = tmp_path / "src"
    (src / "locked").mkdir(parents=True)
    write_image(src / "a.png", noise(4, 4))
    write_image(src / "locked" / "b.png", noise(4, 4))
    (src / "locked").chmod(0)
    if os.geteuid() == 0:  # root lists a mode-000 folder: have the listing fail as everyone else's does
        real_scandir = os.scandir

        def scandir_as_a_user(path="."):
            if os.stat(path).st_mode & 0o777 == 0:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
            return real_scandir(path)
        monkeypatch.setattr(os, "scandir", scandir_as_a_user)
    try:
        code = main(["upscale", str(src), "-o", str(tmp_path / "out"), *options])
    finally:
        (src / "locked").chmod(0o755)
    err = capsys.readouterr().err
    assert code == 1
    assert error_lines(err) == [f"error: {src / 'locked'}: cannot list the folder (permission denied); its files "
                                "are skipped"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png"]
    assert "srgan-fast: 1 written, 0 skipped, 1 failed in " in err
