"""Real-world and broken image files through imageio, every one made here: empty, truncated, corrupt streams,
wrong extensions, 1×1, CMYK, EXIF-rotated, ICC-tagged, animated, and sizes around Pillow's own bomb limit.

A file either reads correctly or fails with an ImageFileError that names it; no other exception type escapes.
"""
from __future__ import annotations

import struct
import threading
import zlib

import numpy as np
import png
import pytest
from PIL import ExifTags, Image, ImageCms, ImageOps

from srgan_fast.io.images import ImageFile, ImageFileError, load_image, read_image
from srgan_fast.io.save import save_image, write_image

ICC_PROFILE = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
ORIENTATION, MAKE, ARTIST = ExifTags.Base.Orientation, ExifTags.Base.Make, ExifTags.Base.Artist


def _pixels(shape, dtype=np.uint8, seed=0):
    return np.random.default_rng(seed).integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)


def _png_chunks(data: bytes) -> list[tuple[int, bytes, int]]:
    """(offset, type, length) of each chunk of a PNG file."""
    chunks, offset = [], 8
    while offset < len(data):
        length, kind = struct.unpack("!I4s", data[offset:offset + 8])
        chunks.append((offset, kind, length))
        offset += 12 + length
    return chunks


def _assert_reads_or_fails_naming(path, shape, max_pixels=10_000):
    try:
        image = load_image(path, max_pixels)  # small, so that a damaged size field cannot cost much
    except ImageFileError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
    else:
        assert image.frames[0].shape == shape


@pytest.mark.parametrize("name", ["z.png", "z.jpg", "z.gif", "z.webp", "z.tif"])
def test_an_empty_file_is_an_image_file_error(tmp_path, name):
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(ImageFileError, match=rf"{name}: unreadable or truncated image \(empty file\)"):
        load_image(tmp_path / name)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])  # Pillow's reader, pypng's reader
def test_a_png_truncated_anywhere_reads_or_fails_naming_the_file(tmp_path, dtype):
    whole = tmp_path / "whole.png"
    write_image(whole, _pixels((48, 64, 3), dtype))
    data = whole.read_bytes()
    idat = next(offset for offset, kind, _ in _png_chunks(data) if kind == b"IDAT")
    cuts = {"signature": 8, "header only": idat, "mid-IDAT": idat + 40, "before IEND": len(data) - 12,
            "mid-IEND": len(data) - 3}
    for label, cut in cuts.items():
        path = tmp_path / f"{label}.png"
        path.write_bytes(data[:cut])
        _assert_reads_or_fails_naming(path, (48, 64, 3))
    with pytest.raises(ImageFileError, match="header only.png: unreadable or truncated image"):
        load_image(tmp_path / "header only.png")


def test_a_sixteen_bit_png_whose_header_claims_more_rows_than_its_data_holds_is_an_image_file_error(tmp_path):
    # pypng stops quietly where the data does. (Pillow reads an 8-bit PNG like this with the missing rows black.)
    path = tmp_path / "tall.png"
    write_image(path, _pixels((32, 8, 3), np.uint16))
    data = bytearray(path.read_bytes())
    data[20:24] = struct.pack("!I", 40)  # IHDR height
    data[29:33] = struct.pack("!I", zlib.crc32(data[12:29]))
    path.write_bytes(bytes(data))
    with pytest.raises(ImageFileError, match="tall.png: unreadable or truncated image"):
        load_image(path)


def test_a_sixteen_bit_png_with_a_corrupt_zlib_stream_is_an_image_file_error(tmp_path):
    path = tmp_path / "c16.png"
    write_image(path, _pixels((32, 32, 3), np.uint16))
    data = bytearray(path.read_bytes())
    offset, _, length = next(chunk for chunk in _png_chunks(data) if chunk[1] == b"IDAT")
    start = offset + 8
    data[start + length // 2:start + length // 2 + 16] = bytes(16)  # inside the compressed stream
    crc = zlib.crc32(data[offset + 4:start + length])  # a valid CRC, so that zlib is what fails
    data[start + length:start + length + 4] = struct.pack("!I", crc)
    path.write_bytes(bytes(data))
    with pytest.raises(zlib.error):  # what escaped before: pypng's own error
        list(png.Reader(filename=str(path)).asDirect()[2])
    with pytest.raises(ImageFileError, match="c16.png: unreadable or truncated image"):
        load_image(path)


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's notes on the damaged TIFF tags it skips
@pytest.mark.parametrize("suffix", [".png", ".jpg", ".gif", ".webp", ".tif"])
def test_random_byte_damage_reads_or_fails_naming_the_file(tmp_path, suffix):
    whole = tmp_path / f"whole{suffix}"
    write_image(whole, _pixels((24, 20, 3), seed=1))
    data = whole.read_bytes()
    rng = np.random.default_rng(2)
    for attempt in range(25):
        damaged = bytearray(data)
        for position in rng.integers(0, len(data), 3):
            damaged[position] = rng.integers(0, 256)
        path = tmp_path / f"damaged{attempt}{suffix}"
        path.write_bytes(bytes(damaged))
        _assert_reads_or_fails_naming(path, (24, 20, 3))


def test_memory_errors_are_not_disguised_as_bad_files(tmp_path, monkeypatch):
    write_image(tmp_path / "a.png", _pixels((4, 4, 3)))

    def out_of_memory(image):
        raise MemoryError

    monkeypatch.setattr("srgan_fast.io.images._pil_to_array", out_of_memory)
    with pytest.raises(MemoryError):
        load_image(tmp_path / "a.png")


def test_the_content_decides_the_format_not_the_extension(tmp_path):
    Image.fromarray(_pixels((10, 12, 3))).save(tmp_path / "photo.png", format="JPEG")
    image = load_image(tmp_path / "photo.png")
    assert image.format == "JPEG" and image.frames[0].shape == (10, 12, 3)
    (tmp_path / "notes.png").write_text("not an image at all")
    with pytest.raises(ImageFileError, match="notes.png: unreadable or truncated image .not in any format Pillow"):
        load_image(tmp_path / "notes.png")


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".gif", ".webp", ".tif", ".bmp"])
def test_a_one_pixel_image_round_trips(tmp_path, suffix):
    write_image(tmp_path / f"one{suffix}", np.array([[[200, 100, 50]]], dtype=np.uint8))
    assert read_image(tmp_path / f"one{suffix}").shape == (1, 1, 3)


def test_a_cmyk_jpeg_reads_as_rgb(tmp_path):
    cmyk = Image.fromarray(_pixels((16, 16, 4)), mode="CMYK")
    cmyk.save(tmp_path / "cmyk.jpg")
    array = read_image(tmp_path / "cmyk.jpg")
    with Image.open(tmp_path / "cmyk.jpg") as expected:
        assert np.array_equal(array, np.asarray(expected.convert("RGB")))


def _rotated_photo(path, orientation, fmt="JPEG"):
    exif = Image.Exif()
    exif.update({ORIENTATION: orientation, MAKE: "Camera Co", ARTIST: "A. Photographer"})
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.ExifImageWidth] = 30
    Image.fromarray(_pixels((20, 30, 3))).save(path, format=fmt, exif=exif)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_on_read(tmp_path, orientation):
    path = tmp_path / "r.jpg"
    _rotated_photo(path, orientation)
    with Image.open(path) as original:
        expected = np.asarray(ImageOps.exif_transpose(original))
    image = load_image(path)
    assert np.array_equal(image.frames[0], expected)
    assert image.frames[0].shape == ((30, 20, 3) if orientation >= 5 else (20, 30, 3))


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp", ".tif"])
def test_written_photos_are_upright_and_keep_the_rest_of_their_exif(tmp_path, suffix):
    _rotated_photo(tmp_path / "r.jpg", 6)
    image = load_image(tmp_path / "r.jpg")
    assert save_image(tmp_path / f"out{suffix}", image) == []
    with Image.open(tmp_path / f"out{suffix}") as written:
        exif = written.getexif()
        assert written.size == (20, 30)
        assert exif.get(ORIENTATION, 1) == 1
        assert exif[MAKE] == "Camera Co" and exif[ARTIST] == "A. Photographer"
        assert ExifTags.Base.ExifImageWidth not in exif.get_ifd(ExifTags.IFD.Exif)  # the source's size


def test_a_rotated_png_is_turned_upright_too(tmp_path):
    _rotated_photo(tmp_path / "r.png", 8, fmt="PNG")
    with Image.open(tmp_path / "r.png") as original:
        expected = np.asarray(ImageOps.exif_transpose(original))
    assert np.array_equal(read_image(tmp_path / "r.png"), expected)


@pytest.mark.parametrize("source, destination", [(".png", ".png"), (".jpg", ".jpg"), (".jpg", ".png"),
                                                 (".png", ".webp"), (".png", ".tif"), (".tif", ".jpg")])
def test_the_icc_profile_is_carried(tmp_path, source, destination):
    Image.fromarray(_pixels((8, 9, 3))).save(tmp_path / f"in{source}", icc_profile=ICC_PROFILE)
    image = load_image(tmp_path / f"in{source}")
    assert image.icc_profile == ICC_PROFILE
    save_image(tmp_path / f"out{destination}", image)
    assert load_image(tmp_path / f"out{destination}").icc_profile == ICC_PROFILE


def test_a_sixteen_bit_png_keeps_its_icc_profile_and_exif_through_pypng(tmp_path):
    pixels = _pixels((6, 5, 4), np.uint16, seed=4)
    exif = Image.Exif()
    exif[ARTIST] = "A. Photographer"
    write_image(tmp_path / "a.png", pixels, icc_profile=ICC_PROFILE, exif=exif.tobytes())
    image = load_image(tmp_path / "a.png")
    assert image.icc_profile == ICC_PROFILE and np.array_equal(image.frames[0], pixels)
    save_image(tmp_path / "b.png", image)
    again = load_image(tmp_path / "b.png")
    assert again.icc_profile == ICC_PROFILE and np.array_equal(again.frames[0], pixels)
    with Image.open(tmp_path / "b.png") as written:
        assert written.getexif()[ARTIST] == "A. Photographer"


def test_what_a_format_cannot_hold_is_a_warning(tmp_path):
    _rotated_photo(tmp_path / "photo.jpg", 1)
    exif = load_image(tmp_path / "photo.jpg").exif
    image = ImageFile([_pixels((4, 4, 4), np.uint16)], "PNG", ICC_PROFILE, exif)
    out = tmp_path / "out.bmp"
    assert save_image(out, image) == [f"{out}: BMP has no alpha channel; transparent areas laid over #ffffff",
                                      f"{out}: BMP cannot hold this 16-bit image; writing 8 bits",
                                      f"{out}: ICC profile dropped: BMP cannot hold one",
                                      f"{out}: EXIF dropped: BMP cannot hold it"]
    assert read_image(out).shape == (4, 4, 3)
    with pytest.warns(UserWarning, match="ICC profile dropped: BMP cannot hold one"):
        write_image(tmp_path / "again.bmp", _pixels((4, 4, 3)), icc_profile=ICC_PROFILE)


ANIMATIONS = [(".gif", "GIF"), (".webp", "WEBP"), (".png", "PNG")]


def _animation(path, fmt, loop=0):
    frames = [Image.fromarray(_pixels((20, 30, 3), seed=seed)) for seed in range(3)]
    frames[0].save(path, format=fmt, save_all=True, append_images=frames[1:], duration=[100, 250, 400], loop=loop)


@pytest.mark.parametrize("suffix, fmt", ANIMATIONS)
@pytest.mark.parametrize("loop", [0, 3])
def test_animations_keep_every_frame_their_durations_and_loop(tmp_path, suffix, fmt, loop):
    _animation(tmp_path / f"in{suffix}", fmt, loop)
    image = load_image(tmp_path / f"in{suffix}")
    assert image.animated and len(image.frames) == 3 and image.format == fmt
    assert image.durations_ms == [100, 250, 400] and image.loop == loop  # GIF: 10 ms units, all exact here
    upscaled = image.with_frames([frame.repeat(2, axis=0).repeat(2, axis=1) for frame in image.frames])
    assert save_image(tmp_path / f"out{suffix}", upscaled) == []
    again = load_image(tmp_path / f"out{suffix}")
    assert len(again.frames) == 3 and again.durations_ms == [100, 250, 400] and again.loop == loop
    assert all(frame.shape == (40, 60, 3) for frame in again.frames)
    assert not np.array_equal(again.frames[0], again.frames[1])
    if fmt == "PNG":  # APNG is lossless
        assert all(np.array_equal(a, b) for a, b in zip(again.frames, upscaled.frames))


def test_a_gif_that_plays_once_still_plays_once_as_an_apng(tmp_path):
    frames = [Image.fromarray(_pixels((8, 8, 3), seed=seed)) for seed in range(2)]
    frames[0].save(tmp_path / "once.gif", save_all=True, append_images=frames[1:], duration=50)
    image = load_image(tmp_path / "once.gif")
    assert image.loop is None
    save_image(tmp_path / "once.png", image)
    with Image.open(tmp_path / "once.png") as written:
        assert written.n_frames == 2 and written.info["loop"] == 1


@pytest.mark.parametrize("suffix", [".jpg", ".bmp"])
def test_an_animation_into_a_still_format_is_refused(tmp_path, suffix):
    _animation(tmp_path / "in.gif", "GIF")
    image = load_image(tmp_path / "in.gif")
    with pytest.raises(ImageFileError, match=r"the source has 3 frames and .* holds one; write \.gif"):
        save_image(tmp_path / f"out{suffix}", image)
    assert not (tmp_path / f"out{suffix}").exists()
    with pytest.raises(ImageFileError, match="in.gif: has 3 frames; read it with load_image"):
        read_image(tmp_path / "in.gif")


def test_an_animation_is_limited_by_the_pixels_of_all_its_frames(tmp_path):
    _animation(tmp_path / "in.webp", "WEBP")
    with pytest.raises(ImageFileError, match=r"3 frames of 30x20 = 1800 pixels exceeds the limit of 1000 .*--max"):
        load_image(tmp_path / "in.webp", max_pixels=1000)
    assert len(load_image(tmp_path / "in.webp", max_pixels=1800).frames) == 3


def test_a_camera_mpo_reads_as_its_primary_photo(tmp_path):
    primary, preview = Image.fromarray(_pixels((16, 24, 3))), Image.fromarray(_pixels((8, 12, 3), seed=1))
    primary.save(tmp_path / "camera.jpg", format="MPO", save_all=True, append_images=[preview])
    image = load_image(tmp_path / "camera.jpg")
    assert image.format == "MPO" and len(image.frames) == 1 and image.frames[0].shape == (16, 24, 3)


@pytest.fixture
def small_pillow_limit(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow refuses above 2000 pixels, warns above 1000


@pytest.mark.parametrize("suffix", [".png", ".webp", ".gif", ".tif"])
def test_max_pixels_is_the_only_limit(tmp_path, small_pillow_limit, suffix):
    write_image(tmp_path / f"big{suffix}", _pixels((100, 100, 3)))
    assert read_image(tmp_path / f"big{suffix}", max_pixels=1_000_000).shape == (100, 100, 3)
    assert read_image(tmp_path / f"big{suffix}").shape == (100, 100, 3)  # the default limit is ours too
    assert Image.MAX_IMAGE_PIXELS == 1000
    with pytest.raises(Image.DecompressionBombError):  # Pillow's own reads are as strict as before
        Image.open(tmp_path / f"big{suffix}")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow's, before our refusal
def test_our_limit_still_refuses_and_says_how_to_allow_it(tmp_path, small_pillow_limit):
    write_image(tmp_path / "big.png", _pixels((100, 100, 3)))
    with pytest.raises(ImageFileError, match=r"big.png: 100x100 = 10000 pixels exceeds the limit of 5000 .*"
                                             r"raise --max-pixels"):
        load_image(tmp_path / "big.png", max_pixels=5000)
    # Below Pillow's limit as well: Pillow refuses first, and the message is still ours, quoting only our limit.
    with pytest.raises(ImageFileError) as refusal:
        load_image(tmp_path / "big.png", max_pixels=500)
    assert str(refusal.value) == (f"{tmp_path / 'big.png'}: 10000 pixels exceeds the limit of 500 (a decompression "
                                  "bomb or a very large image; raise --max-pixels to allow it)")
    assert Image.MAX_IMAGE_PIXELS == 1000


def test_a_100000_square_header_quotes_the_one_limit_that_applies(tmp_path):
    """It quoted two: the default --max-pixels (50,000,000) and Pillow's refusal at 178,956,970."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack("!I", len(data)) + kind + data + struct.pack("!I", zlib.crc32(kind + data))

    header = struct.pack("!IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)  # 8-bit RGB
    (tmp_path / "huge.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    with pytest.raises(ImageFileError) as refusal:
        load_image(tmp_path / "huge.png")
    assert str(refusal.value) == (f"{tmp_path / 'huge.png'}: 10000000000 pixels exceeds the limit of 50000000 (a "
                                  "decompression bomb or a very large image; raise --max-pixels to allow it)")


def test_concurrent_reads_with_different_limits_leave_pillows_limit_as_it_was(tmp_path, small_pillow_limit):
    write_image(tmp_path / "big.webp", _pixels((60, 60, 3)))
    failures = []

    def read(max_pixels):
        try:
            for _ in range(10):
                assert read_image(tmp_path / "big.webp", max_pixels=max_pixels).shape == (60, 60, 3)
        except Exception as exc:  # reported from the main thread
            failures.append(exc)

    threads = [threading.Thread(target=read, args=(limit,)) for limit in (4000, 10_000, 1_000_000, 3600) * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == [] and Image.MAX_IMAGE_PIXELS == 1000


def test_write_failures_are_image_file_errors(tmp_path):
    with pytest.raises(ImageFileError, match="could not write"):
        write_image(tmp_path / "missing" / "out.png", _pixels((4, 4, 3)))
    with pytest.raises(ImageFileError, match=r"out.png: expected H×W×C uint8 or uint16 frames .* got shape \(4, 4\)"):
        write_image(tmp_path / "out.png", _pixels((4, 4)))
    with pytest.raises(ImageFileError, match="out.png: no frames to write"):
        save_image(tmp_path / "out.png", ImageFile([], "PNG"))
    assert list(tmp_path.iterdir()) == []  # no temporary files left behind


@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize("pages", [1, 2])
def test_16bit_colour_tiff_round_trips_with_its_icc_profile(tmp_path, channels, pages):
    rng = np.random.default_rng(channels + pages)
    # Odd values: an 8-bit step anywhere would lose them.
    frames = [(rng.integers(0, 32768, (7, 9, channels), dtype=np.uint16) * 2 + 1) for _ in range(pages)]
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    path = tmp_path / "deep.tif"
    assert save_image(path, ImageFile(frames, "TIFF", icc)) == []
    loaded = load_image(path)
    assert len(loaded.frames) == pages and loaded.icc_profile == icc
    for got, expected in zip(loaded.frames, frames):
        assert got.dtype == np.uint16 and np.array_equal(got, expected)


def test_a_link_that_leads_nowhere_says_so(tmp_path):
    (tmp_path / "loop.png").symlink_to("loop.png")
    (tmp_path / "gone.png").symlink_to("nothing.png")
    for name, cause in [("loop.png", "a symbolic link loop (it leads back to itself through loop.png)"),
                        ("gone.png", "a broken symbolic link (to nothing.png, which does not exist)"),
                        ("absent.png", "no such file")]:
        with pytest.raises(ImageFileError) as refusal:
            load_image(tmp_path / name)
        assert str(refusal.value) == f"{tmp_path / name}: {cause}"
