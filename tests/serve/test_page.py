"""The page at / in a real browser: Debian's Chromium driven by Playwright. A dropped image comes back, its
download has the API's pixels, the zip holds it, and an oversized file shows the server's error line.

Set SRGAN_FAST_SCREENSHOT=path.png to keep the screenshot (the README's is docs/serve_page.png)."""
from __future__ import annotations

import base64
import io
import os
import shutil
import zipfile

import numpy as np
import pytest

from serve_helpers import decoded, png_bytes, random_image, running

import httpx  # noqa: E402

from srgan_fast.serve import create_app  # noqa: E402
from srgan_fast.serve.limits import Limits  # noqa: E402

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the test extra has it)")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)", allow_module_level=True)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
MAX_PIXELS = 100 * 100


def sample_64() -> np.ndarray:
    """The bundled photo, made 64×64 the way the demo makes its input."""
    from srgan_fast.degradation import bicubic_downscale
    from srgan_fast.io.images import read_image
    from srgan_fast.samples import sample_path

    return bicubic_downscale(read_image(sample_path())[:, :, :3])


def drop_file(page, name: str, data: bytes) -> None:
    """A real drop event on the drop zone, carrying a File made of ``data``."""
    page.evaluate("""([name, data]) => {
        const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], name, {type: "image/png"}));
        document.getElementById("drop").dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true}));
    }""", [name, base64.b64encode(data).decode()])


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield browser
        browser.close()


@pytest.mark.slow
def test_page_upscales_a_dropped_image_and_shows_errors(browser, tmp_path):
    image = png_bytes(sample_64())
    oversized = png_bytes(random_image(np.random.default_rng(0), 101, 100))
    with running(create_app(["srgan"], backend="native", limits=Limits(max_pixels=MAX_PIXELS))) as url:
        expected = httpx.post(f"{url}/v1/upscale", content=image, timeout=120)
        refused = httpx.post(f"{url}/v1/upscale", content=oversized, timeout=120)
        assert expected.status_code == 200 and refused.status_code == 413
        page = browser.new_page(viewport={"width": 1000, "height": 720})
        page.goto(url + "/")
        page.wait_for_selector("#model option[value=srgan]", state="attached")

        drop_file(page, "astronaut.png", image)
        first = page.locator(".item").nth(0)
        first.locator(".download").wait_for(state="visible", timeout=60_000)
        with page.expect_download() as download:
            first.locator(".download").click()
        assert download.value.suggested_filename == "astronaut_x4.png"
        saved = download.value.path().read_bytes()
        assert np.array_equal(decoded(saved), decoded(expected.content))

        with page.expect_download() as archive:
            page.click("#zip")
        with zipfile.ZipFile(io.BytesIO(archive.value.path().read_bytes())) as zipped:
            assert zipped.testzip() is None
            assert zipped.namelist() == ["astronaut_x4.png"]
            assert zipped.read("astronaut_x4.png") == saved

        drop_file(page, "too_big.png", oversized)
        error = page.locator(".item").nth(1).locator(".error")
        error.wait_for(state="visible", timeout=60_000)
        assert error.inner_text() == refused.json()["error"]
        assert "exceeds the limit of 10000" in error.inner_text()

        first.locator(".slider").fill("35")
        page.wait_for_function("document.querySelector('.item .after').naturalWidth === 256")
        shot = page.screenshot(full_page=True)
        (tmp_path / "page.png").write_bytes(shot)
        if os.environ.get("SRGAN_FAST_SCREENSHOT"):
            with open(os.environ["SRGAN_FAST_SCREENSHOT"], "wb") as file:
                file.write(shot)
