"""Helpers of the serve tests: a real uvicorn server on a free port in this process, tiny models and images.

The tiny random model (2 residual blocks, 8 channels, halo 12) with 24-pixel tiles makes even 100² images many
windows, so requests share batches and the scheduler's gather and scatter are exercised at CI speed.
"""
from __future__ import annotations

import contextlib
import io
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install 'srgan_fast[serve]')")
pytest.importorskip("httpx", reason="httpx is not installed (the test extra has it)")

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from PIL import Image  # noqa: E402

import srgan_fast  # noqa: E402
from srgan_fast.io.images import decode_image  # noqa: E402

TILE = 24


def tiny_upscaler(weights, **options):
    return srgan_fast.Upscaler(weights, backend="native", tile=TILE, **options)


def reference(image: np.ndarray, weights, **options) -> np.ndarray:
    """What srgan_fast.upscale gives for this decoded image with the test server's options."""
    return srgan_fast.upscale(image, model=weights, backend="native", tile=TILE, **options)


@contextlib.contextmanager
def running(app):
    """The app on 127.0.0.1 at a free port, served by uvicorn in a thread; yields the base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def png_bytes(array: np.ndarray) -> bytes:
    """An H×W×C uint8/uint16 array as PNG bytes (16-bit colour through pypng, as the CLI writes it)."""
    from srgan_fast.io.images import ImageFile
    from srgan_fast.io.save import encode_image

    data, _ = encode_image(ImageFile([array], "PNG"), "PNG")
    return data


def random_image(rng, h: int, w: int, channels: int = 3, dtype=np.uint8) -> np.ndarray:
    high = 256 if dtype == np.uint8 else 65536
    image = rng.integers(0, high, (h, w, channels), dtype=dtype)
    if channels == 4:
        image[: h // 3, :, 3] = 0  # fully transparent rows: the push-pull fill runs
    return image


def decoded(answer: bytes) -> np.ndarray:
    return decode_image(answer, name="answer").frames[0]


def metric(base: str, name: str, labels: str = "") -> float:
    """One sample of /metrics, e.g. metric(url, 'srgan_serve_requests_total', 'status="200"'); 0 if absent."""
    text = httpx.get(f"{base}/metrics").text
    for line in text.splitlines():
        if line.startswith(name + ("{" + labels + "}" if labels else " ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def pil_png(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


# Ray's workers take ports 10002-19999 by default, and the kernel hands out its ephemeral range to every other
# socket (Ray starts dozens of processes): a port from neither is not taken by another process between the probe
# and the server's bind, as a port the kernel picks for the probe can be.
RAY_WORKER_PORTS_END = 20000


def free_port() -> int:
    """A port free on 127.0.0.1 now, from below the kernel's ephemeral range and above Ray's worker ports."""
    try:
        ephemeral_start = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_start = 32768
    candidates = list(range(RAY_WORKER_PORTS_END, ephemeral_start))
    random.shuffle(candidates)
    for port in candidates[:200]:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as probe:  # no such range here: one the kernel picks
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def cli_server(weights, tmp_path, *options: str, background: bool = False):
    """``srgan-fast serve`` of ``weights`` in its own process, ready; yields (process, base URL).

    background: start it as a shell starts a background job (``cmd &``), SIGINT ignored."""
    from srgan_fast.weights import save_weights

    model = tmp_path / "tiny.safetensors"
    save_weights(model, weights.tensors, weights.metadata)
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    def ignore_sigint():  # in the child, before exec: what `cmd &` does in a shell without job control
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    process = subprocess.Popen([sys.executable, "-m", "srgan_fast.cli", "serve", "--model", str(model), "--port",
                                str(port), "--backend", "native", "--tile", str(TILE), *options],
                               stderr=subprocess.PIPE, text=True, preexec_fn=ignore_sigint if background else None,
                               env={**os.environ, "OMP_WAIT_POLICY": "passive"})
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.stderr.read()
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.1)
        yield process, url
    finally:
        process.kill()
        process.wait()
