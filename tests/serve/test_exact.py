"""Every answer is bit for bit ``srgan_fast.upscale`` of the decoded input, also when 32 requests of mixed
sizes, dtypes and channels share batches."""
from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from serve_helpers import decoded, metric, png_bytes, random_image, reference, running, tiny_upscaler

import httpx  # noqa: E402 - after serve_helpers, which skips the module without the serve extra

from srgan_fast.serve import create_app  # noqa: E402


@pytest.fixture(scope="module")
def server(tiny_weights):
    app = create_app({"tiny": tiny_upscaler(tiny_weights)}, max_wait_s=0.02)
    with running(app) as url:
        yield url


def mixed_inputs(rng, count: int) -> list[np.ndarray]:
    """8- and 16-bit RGB, RGBA and gray, sizes from one window to many (tile 24 + halo 12)."""
    kinds = [(3, np.uint8), (3, np.uint16), (4, np.uint8), (1, np.uint8), (4, np.uint16), (1, np.uint16)]
    sizes = [(20, 20), (48, 48), (100, 75), (64, 130), (33, 57)]
    return [random_image(rng, *sizes[i % len(sizes)], *kinds[i % len(kinds)]) for i in range(count)]


@pytest.mark.slow
def test_32_concurrent_mixed_requests_are_bit_exact(server, tiny_weights):
    rng = np.random.default_rng(23)
    images = mixed_inputs(rng, 32)
    batches_before = metric(server, "srgan_serve_batch_requests_count", 'lane="bulk"')
    shared_before = metric(server, "srgan_serve_batch_requests_sum", 'lane="bulk"')

    def post(image):
        return httpx.post(f"{server}/v1/upscale", content=png_bytes(image), timeout=300)

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(post, images))
    for image, answer in zip(images, answers):
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "image/png"
        got = decoded(answer.content)
        expected = reference(image, tiny_weights)
        assert got.dtype == image.dtype and got.shape == expected.shape
        assert np.array_equal(got, expected), f"{image.shape} {image.dtype}"
    batches = metric(server, "srgan_serve_batch_requests_count", 'lane="bulk"') - batches_before
    shared = metric(server, "srgan_serve_batch_requests_sum", 'lane="bulk"') - shared_before
    assert shared > batches, "no backend call carried windows of more than one request"
    if "express" in httpx.get(f"{server}/readyz").json()["lanes"]:
        assert metric(server, "srgan_serve_batch_tiles_count", 'lane="express"') > 0, "the express lane never ran"


def test_shipped_model_by_name_is_bit_exact(tiny_weights):
    """create_app's own loading: a shipped model named as in ?model=, answers equal to srgan_fast.upscale."""
    import srgan_fast

    rng = np.random.default_rng(9)
    images = [random_image(rng, 24, 20), random_image(rng, 16, 28, 4, np.uint16)]
    with running(create_app(["srgan"], backend="native")) as url:
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(lambda image: httpx.post(f"{url}/v1/upscale", params={"model": "srgan"},
                                                             content=png_bytes(image), timeout=120), images))
    for image, answer in zip(images, answers):
        assert answer.status_code == 200, answer.text
        assert np.array_equal(decoded(answer.content), srgan_fast.upscale(image, model="srgan", backend="native"))


@pytest.mark.parametrize("query, options", [
    ({"outscale": "2.5"}, {"outscale": 2.5}),
    ({"width": "150"}, {"width": 150}),
    ({"height": "97"}, {"height": 97}),
    ({"tta": "true"}, {"tta": True}),
])
def test_options_match_upscale(server, tiny_weights, query, options):
    image = random_image(np.random.default_rng(5), 40, 60)
    answer = httpx.post(f"{server}/v1/upscale", params=query, content=png_bytes(image), timeout=120)
    assert answer.status_code == 200, answer.text
    assert np.array_equal(decoded(answer.content), reference(image, tiny_weights, **options))


@pytest.mark.parametrize("fmt, content_type, pil_format", [
    ("jpeg", "image/jpeg", "JPEG"), ("webp", "image/webp", "WEBP"), ("png", "image/png", "PNG")])
def test_output_format(server, fmt, content_type, pil_format):
    image = random_image(np.random.default_rng(6), 30, 30)
    answer = httpx.post(f"{server}/v1/upscale", params={"format": fmt, "quality": "80"}, content=png_bytes(image),
                        timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == content_type
    assert Image.open(io.BytesIO(answer.content)).format == pil_format


def test_jpeg_input_answers_jpeg_upright_with_its_profile(server, tiny_weights):
    """EXIF orientation applied and the ICC profile carried, as the CLI does; the default format is the input's."""
    from PIL import ImageCms

    picture = Image.fromarray(random_image(np.random.default_rng(7), 24, 40))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: shown upright, it is 40 high and 24 wide
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=95, exif=exif, icc_profile=icc)
    answer = httpx.post(f"{server}/v1/upscale", content=buffer.getvalue(), timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "image/jpeg"
    result = Image.open(io.BytesIO(answer.content))
    assert result.size == (4 * 24, 4 * 40)
    assert result.info.get("icc_profile") == icc
    assert result.getexif().get(0x0112) is None


def test_multipart_body(server, tiny_weights):
    image = random_image(np.random.default_rng(8), 30, 26)
    answer = httpx.post(f"{server}/v1/upscale", files={"image": ("a.png", png_bytes(image), "image/png")},
                        timeout=60)
    assert answer.status_code == 200, answer.text
    assert np.array_equal(decoded(answer.content), reference(image, tiny_weights))


def test_animation_comes_back_with_every_frame(server, tiny_weights):
    """A 2-frame GIF answers as APNG (PNG keeps frames, GIF is not an answer format), each frame exact."""
    rng = np.random.default_rng(10)
    frames = [Image.fromarray(random_image(rng, 20, 24)).quantize(16) for _ in range(2)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=[80, 120], loop=0)
    answer = httpx.post(f"{server}/v1/upscale", content=buffer.getvalue(), timeout=60)
    assert answer.status_code == 200, answer.text
    from srgan_fast.io.images import decode_image

    source, result = decode_image(buffer.getvalue()), decode_image(answer.content)
    assert result.format == "PNG" and len(result.frames) == 2 and result.durations_ms == [80, 120]
    for frame, got in zip(source.frames, result.frames):
        assert np.array_equal(got, reference(frame, tiny_weights))
    refused = httpx.post(f"{server}/v1/upscale", params={"format": "jpeg"}, content=buffer.getvalue(), timeout=60)
    assert refused.status_code == 400
    assert refused.json()["error"] == ("the input has 2 frames and JPEG holds one: ask for format=png (APNG) or "
                                       "format=webp")
