"""The service's life: health and readiness, models, metrics, the page; a client that goes away has its
remaining windows dropped, and one that goes away mid-upload is counted as cancelled (stopping: test_stopping)."""
from __future__ import annotations

import socket
import time

import numpy as np
import pytest

from serve_helpers import metric, png_bytes, random_image, running, tiny_upscaler

import httpx  # noqa: E402

from srgan_fast.serve import create_app  # noqa: E402


@pytest.fixture(scope="module")
def server(tiny_weights):
    with running(create_app({"tiny": tiny_upscaler(tiny_weights)})) as url:
        yield url


def test_health_ready_models_page(server, tiny_weights):
    assert httpx.get(f"{server}/healthz").json() == {"status": "alive"}
    ready = httpx.get(f"{server}/readyz").json()
    assert ready["status"] == "ready" and ready["models"] == ["tiny"]
    (model,) = httpx.get(f"{server}/v1/models").json()["models"]
    assert model["name"] == "tiny" and model["default"] and model["scale"] == 4
    assert model["architecture"] == tiny_weights.network.architecture
    assert model["backend"] == "native" and "fp32" in model["precisions"]
    page = httpx.get(f"{server}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")


def test_metrics_count_requests_latency_batches_and_engine_time(server):
    before = metric(server, "srgan_serve_requests_total", 'status="200"')
    body = png_bytes(random_image(np.random.default_rng(0), 30, 30))
    assert httpx.post(f"{server}/v1/upscale", content=body, timeout=60).status_code == 200
    text = httpx.get(f"{server}/metrics").text
    assert metric(server, "srgan_serve_requests_total", 'status="200"') == before + 1
    for name in ("srgan_serve_request_seconds_bucket", "srgan_serve_queue_pixels", "srgan_serve_batch_tiles_bucket",
                 'srgan_serve_engine_busy_seconds_total{lane="bulk"}'):
        assert name in text, name
    assert metric(server, "srgan_serve_engine_busy_seconds_total", 'lane="bulk"') > 0


@pytest.mark.slow
def test_disconnect_drops_the_remaining_windows(server):
    """A 400² image is 289 windows of the tiny model; the client leaves after the first batches ran."""
    body = png_bytes(random_image(np.random.default_rng(1), 400, 400))
    host, port = server.removeprefix("http://").split(":")
    tiles_before = metric(server, "srgan_serve_batch_tiles_sum", 'lane="bulk"')
    cancelled = metric(server, "srgan_serve_requests_total", 'status="cancelled"')  # the module's other tests count
    with socket.create_connection((host, int(port))) as client:
        client.sendall(f"POST /v1/upscale HTTP/1.1\r\nHost: {host}\r\nContent-Type: image/png\r\n"
                       f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        deadline = time.monotonic() + 60
        while metric(server, "srgan_serve_batch_tiles_sum", 'lane="bulk"') == tiles_before:
            assert time.monotonic() < deadline, "no window of the request ran"
            time.sleep(0.01)
    deadline = time.monotonic() + 30
    while metric(server, "srgan_serve_requests_total", 'status="cancelled"') == cancelled:
        assert time.monotonic() < deadline, "the disconnect was not noticed"
        time.sleep(0.01)
    ran = metric(server, "srgan_serve_batch_tiles_sum", 'lane="bulk"')
    time.sleep(0.5)
    assert metric(server, "srgan_serve_batch_tiles_sum", 'lane="bulk"') == ran, "windows ran after the disconnect"
    assert ran - tiles_before < 289
    assert httpx.get(f"{server}/readyz").status_code == 200


def test_disconnect_mid_upload_is_cancelled_without_a_traceback(server, capfd):
    """Headers declaring 1000 bytes, 10 sent, then gone: not the server's failure (was a 500 and a traceback)."""
    cancelled = metric(server, "srgan_serve_requests_total", 'status="cancelled"')
    failed = metric(server, "srgan_serve_requests_total", 'status="500"')
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as client:
        client.sendall(f"POST /v1/upscale HTTP/1.1\r\nHost: {host}\r\nContent-Type: image/png\r\n"
                       "Content-Length: 1000\r\nExpect: 100-continue\r\n\r\n".encode())
        client.settimeout(30)
        assert client.recv(100).startswith(b"HTTP/1.1 100")  # the app is reading the body
        client.sendall(b"0123456789")
    deadline = time.monotonic() + 30
    while metric(server, "srgan_serve_requests_total", 'status="cancelled"') == cancelled:
        assert time.monotonic() < deadline, "the disconnect was not counted as cancelled"
        time.sleep(0.01)
    assert metric(server, "srgan_serve_requests_total", 'status="500"') == failed
    logged = capfd.readouterr().err
    assert "Traceback" not in logged and len(logged.strip().splitlines()) <= 1, logged
