"""The one parser of each option string: what each accepts, and the line each refusal says."""
import pytest

from srgan_fast.options import Device, parse_bytes, parse_device, parse_precision, parse_size, parse_tile


@pytest.mark.parametrize("text, expected", [("cpu", Device("cpu")), ("cuda", Device("cuda")),
                                            ("cuda:1", Device("cuda", 1)), (" CUDA:0 ", Device("cuda", 0))])
def test_devices(text, expected):
    assert parse_device(text) == expected and str(parse_device(str(expected))) == str(expected)


@pytest.mark.parametrize("text", ["gpu", "cuda:", "cuda:x", "cpu:0", ""])
def test_bad_devices(text):
    with pytest.raises(ValueError, match=f"unknown device {text!r}: expected 'cpu', 'cuda' or 'cuda:N'"):
        parse_device(text)


def test_precisions():
    assert parse_precision("BF16") == "bf16"
    with pytest.raises(ValueError, match="unknown precision 'fp64': expected one of fp32, fp16, bf16, int8, fp8"):
        parse_precision("fp64")


@pytest.mark.parametrize("text, expected", [("512", (512, 512)), ("540x960", (540, 960)), ("540×960", (540, 960))])
def test_sizes(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["0x5", "12x", "x", "-3", "1.5x2"])
def test_bad_sizes(text):
    with pytest.raises(ValueError):
        parse_size(text)


@pytest.mark.parametrize("text, expected", [("auto", None), ("AUTO", None), (None, None), ("256", 256),
                                            ("256x384", (256, 384)), ("16×8", (16, 8)), (" 32 X 48 ", (32, 48)),
                                            (64, 64), ((8, 16), (8, 16))])
def test_tiles(text, expected):
    assert parse_tile(text) == expected


@pytest.mark.parametrize("text", ["0", 0, "-4", "big", (0, 4), "0x8", "8x0", "8x8x8", "x8", "8.5", "²", "٣"])
def test_bad_tiles(text):
    with pytest.raises(ValueError, match="tile must be"):
        parse_tile(text)


@pytest.mark.parametrize("text, expected", [("2G", 2 * 2**30), ("512M", 512 * 2**20), ("1.5GiB", 3 * 2**29),
                                            ("3000000", 3_000_000), ("64MiB", 64 * 2**20), ("100 MB", 100 * 2**20),
                                            ("64k", 64 * 2**10), ("7b", 7), (4096, 4096)])
def test_bytes(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "2Q", "-1G", "0", "lots", "G", "1e9", "2 GiBs", "1.5.2M"])
def test_bad_bytes(text):
    with pytest.raises(ValueError, match="expected a positive size in bytes such as 2G, 512M, 1.5GiB or 3000000"):
        parse_bytes(text)


def test_precision_narrowed_to_what_a_part_runs_names_that_part():
    from srgan_fast.options import FLOAT_PRECISIONS

    assert parse_precision(" FP16 ", FLOAT_PRECISIONS, "ONNX graph precision") == "fp16"
    with pytest.raises(ValueError, match="^ONNX graph precision 'int8': expected one of fp32, fp16, bf16$"):
        parse_precision("int8", FLOAT_PRECISIONS, "ONNX graph precision")


def test_cli_and_api_refuse_an_unknown_precision_with_the_same_line(capsys):
    from srgan_fast import Upscaler
    from srgan_fast.cli.main import main

    with pytest.raises(ValueError, match="unknown precision 'fp64': expected one of fp32, fp16, bf16, int8, fp8"):
        Upscaler("srresnet", precision="fp64")
    with pytest.raises(SystemExit) as stop:
        main(["upscale", "in.png", "-o", "out.png", "--precision", "fp64"])
    assert stop.value.code == 2
    assert "unknown precision 'fp64': expected one of fp32, fp16, bf16, int8, fp8" in capsys.readouterr().err


def test_output_scales_colours_qualities_and_name_templates():
    from srgan_fast.options import parse_color, parse_name, parse_outscale, parse_quality

    assert parse_outscale("2.5") == 2.5 and parse_outscale(1) == 1.0
    assert parse_color("white") == (255, 255, 255) and parse_color("#102030") == (16, 32, 48)
    assert parse_color("#888") == (136, 136, 136) and parse_color("rgb(1,2,3)") == (1, 2, 3)
    assert parse_quality("90") == 90 and parse_name("{stem}_{ext}") == "{stem}_{ext}"


@pytest.mark.parametrize("parse, text, message", [
    ("parse_outscale", "0.5", "expected an output scale of 1 or more (e.g. 2 or 2.5), got '0.5'"),
    ("parse_outscale", "nan", "expected an output scale of 1 or more (e.g. 2 or 2.5), got 'nan'"),
    ("parse_color", "blurple", "expected an opaque colour such as white, black, '#808080', '#888' or "
                               "'rgb(128,128,128)', got 'blurple'"),
    ("parse_color", "#11223380", "expected an opaque colour such as white, black, '#808080', '#888' or "
                                 "'rgb(128,128,128)', got '#11223380'"),
    ("parse_quality", "0", "expected a quality from 1 to 100, got '0'"),
    ("parse_quality", "high", "expected a quality from 1 to 100, got 'high'"),
    ("parse_name", "{stem}/{ext}", "expected a file name from {stem} and {ext} without folders, e.g. '{stem}_x4' or "
                                   "'{stem}_{ext}', got '{stem}/{ext}'"),
    ("parse_name", "{size}", "expected a file name from {stem} and {ext} without folders, e.g. '{stem}_x4' or "
                             "'{stem}_{ext}', got '{size}'"),
    ("parse_name", ".{stem}", "expected a file name from {stem} and {ext} without folders, e.g. '{stem}_x4' or "
                              "'{stem}_{ext}', got '.{stem}'"),
])
def test_bad_output_options_say_what_they_got(parse, text, message):
    import srgan_fast.options

    with pytest.raises(ValueError) as error:
        getattr(srgan_fast.options, parse)(text)
    assert str(error.value) == message


def test_numbers_of_any_numeric_type_are_taken_and_bools_are_not():
    """NumPy scalars (a size computed with NumPy, say) were refused as "must be a number" while True passed as 1."""
    from fractions import Fraction

    import numpy as np

    from srgan_fast.options import parse_number, parse_outscale, parse_positive_int, parse_quality

    assert parse_outscale(np.float32(2.5)) == 2.5 and type(parse_outscale(np.float32(2.5))) is float
    assert parse_outscale(Fraction(5, 2)) == 2.5 and parse_outscale(np.int64(3)) == 3.0
    assert parse_number(np.float64(0.5), "outscale") == 0.5
    assert parse_positive_int(np.int64(800), "width") == 800 and type(parse_positive_int(np.uint16(8), "w")) is int
    assert parse_positive_int("800", "width") == 800
    assert parse_tile(np.int64(64)) == 64 and parse_tile((np.int32(8), np.int64(16))) == (8, 16)
    assert parse_bytes(np.int64(2**30)) == 2**30 and type(parse_bytes(np.uint64(7))) is int
    assert parse_quality(np.int8(90)) == 90


@pytest.mark.parametrize("parse, value, message", [
    ("parse_outscale", True, "expected an output scale of 1 or more (e.g. 2 or 2.5), got True"),
    ("parse_bytes", True, "expected a positive size in bytes such as 2G, 512M, 1.5GiB or 3000000, got True"),
    ("parse_quality", True, "expected a quality from 1 to 100, got True"),
    ("parse_quality", "²", "expected a quality from 1 to 100, got '²'"),
    ("parse_tile", True, "tile must be 'auto', N or HxW (e.g. 256 or 256x384), got True"),
    ("parse_tile", (True, 8), "tile must be (rows, cols) of positive ints, got (True, 8)"),
])
def test_a_bool_is_not_a_number(parse, value, message):
    import srgan_fast.options

    with pytest.raises(ValueError) as error:
        getattr(srgan_fast.options, parse)(value)
    assert str(error.value) == message


@pytest.mark.parametrize("value, message", [
    (True, "width must be a positive int, got True"), (2.0, "width must be a positive int, got 2.0"),
    ("0", "width must be a positive int, got '0'"), ("2e3", "width must be a positive int, got '2e3'")])
def test_positive_ints_say_what_they_got(value, message):
    from srgan_fast.options import parse_positive_int

    with pytest.raises(ValueError) as error:
        parse_positive_int(value, "width")
    assert str(error.value) == message
