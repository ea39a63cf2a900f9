"""The service's life: health and readiness, models, metrics, the page; a client that goes away has its
remaining windows dropped; SIGTERM answers the requests in flight, then exits."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from serve_helpers import TILE, decoded, metric, png_bytes, random_image, reference, running, tiny_upscaler

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


def test_disconnect_drops_the_remaining_windows(server):
    """A 400² image is 289 windows of the tiny model; the client leaves after the first batches ran."""
    body = png_bytes(random_image(np.random.default_rng(1), 400, 400))
    host, port = server.removeprefix("http://").split(":")
    tiles_before = metric(server, "srgan_serve_batch_tiles_sum", 'lane="bulk"')
    with socket.create_connection((host, int(port))) as client:
        client.sendall(f"POST /v1/upscale HTTP/1.1\r\nHost: {host}\r\nContent-Type: image/png\r\n"
                       f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        deadline = time.monotonic() + 60
        while metric(server, "srgan_serve_batch_tiles_sum", 'lane="bulk"') == tiles_before:
            assert time.monotonic() < deadline, "no window of the request ran"
            time.sleep(0.01)
    deadline = time.monotonic() + 30
    while metric(server, "srgan_serve_requests_total", 'status="cancelled"') < 1:
        assert time.monotonic() < deadline, "the disconnect was not noticed"
        time.sleep(0.01)
    ran = metric(server, "srgan_serve_batch_tiles_sum", 'lane="bulk"')
    time.sleep(0.5)
    assert metric(server, "srgan_serve_batch_tiles_sum", 'lane="bulk"') == ran, "windows ran after the disconnect"
    assert ran - tiles_before < 289
    assert httpx.get(f"{server}/readyz").status_code == 200


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_sigterm_answers_requests_in_flight_then_exits(tiny_weights, tmp_path):
    from srgan_fast.weights import save_weights

    model = tmp_path / "tiny.safetensors"
    save_weights(model, tiny_weights.tensors, tiny_weights.metadata)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen([sys.executable, "-m", "srgan_fast.cli", "serve", "--model", str(model), "--port",
                                str(port), "--backend", "native", "--tile", str(TILE)],
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_WAIT_POLICY": "passive"})
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
        image = random_image(np.random.default_rng(2), 200, 200)
        answers: list[httpx.Response] = []
        request = threading.Thread(target=lambda: answers.append(
            httpx.post(f"{url}/v1/upscale", content=png_bytes(image), timeout=120)))
        request.start()
        while metric(url, "srgan_serve_queue_pixels") == 0:
            assert request.is_alive()
            time.sleep(0.005)
        process.send_signal(signal.SIGTERM)
        request.join()
        assert process.wait(timeout=60) == 128 + signal.SIGTERM
        assert "stopped by SIGTERM; every request in flight was answered" in process.stderr.read()
    finally:
        process.kill()
    assert answers[0].status_code == 200, answers[0].text
    assert np.array_equal(decoded(answers[0].content), reference(image, tiny_weights))
