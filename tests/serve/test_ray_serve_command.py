"""``srgan-fast serve --ray`` as a user runs it: a real process starting its own local Ray instance, one replica.
A request whose replica dies before answering gets the app's one-line JSON error (not the proxy's plain-text
500); a request in flight when SIGTERM reaches the command is answered, then the command ends with its stop line
and 143, as the plain server does."""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time

import numpy as np
import pytest

from serve_helpers import TILE, decoded, free_port, metric, png_bytes, random_image, reference

import httpx  # noqa: E402

from conftest import command_session  # noqa: E402

pytest.importorskip("ray.serve", reason="Ray Serve is not installed (pip install 'srgan_fast[serve-ray]')")
pytestmark = pytest.mark.slow  # a serve --ray process: Ray, Serve and a replica start before the first request
STARTUP_SECONDS = 300  # a local Ray instance, Serve and a replica warming up, on a busy 2-core machine


@pytest.fixture(scope="module")
def server(tiny_weights, tmp_path_factory):
    """(base URL, the command's process, its stderr file)."""
    from srgan_fast.weights import save_weights

    folder = tmp_path_factory.mktemp("ray_serve_command")
    save_weights(folder / "tiny.safetensors", tiny_weights.tensors, tiny_weights.metadata)
    port, stderr = free_port(), folder / "serve.err"
    # "local": a Ray instance of its own, ended with the command's session.
    with command_session([sys.executable, "-m", "srgan_fast.cli", "serve", "--ray", "local", "--replicas", "1",
                          "--port", str(port), "--model", str(folder / "tiny.safetensors"), "--backend", "native",
                          "--tile", str(TILE)], stderr) as process:
        yield f"http://127.0.0.1:{port}", process, stderr


def wait_ready(url: str, process, stderr) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        assert process.poll() is None, stderr.read_text()[-3000:]
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/readyz", timeout=10).status_code == 200:
                return
        assert time.monotonic() < deadline, f"not ready after {STARTUP_SECONDS} s: {stderr.read_text()[-3000:]}"
        time.sleep(0.2)


def in_flight(url: str, image: np.ndarray) -> tuple[threading.Thread, list]:
    """A request for ``image`` that the replica has admitted (its pixels are queued) when this returns."""
    answers: list = []  # the response, or the error of a request that got none

    def post() -> None:
        try:
            answers.append(httpx.post(f"{url}/v1/upscale", content=png_bytes(image), timeout=300))
        except httpx.HTTPError as error:
            answers.append(error)

    request = threading.Thread(target=post)
    request.start()
    while metric(url, "srgan_serve_queue_pixels") == 0:
        assert request.is_alive(), answers
        time.sleep(0.005)
    return request, answers


def test_a_request_whose_replica_dies_gets_the_one_line_json_error(server):
    url, process, stderr = server
    wait_ready(url, process, stderr)
    small = httpx.post(f"{url}/v1/upscale", content=png_bytes(random_image(np.random.default_rng(1), 8, 8)),
                       timeout=60)
    replica = int(small.headers["x-srgan-server"].rsplit(":", 1)[1])
    request, answers = in_flight(url, random_image(np.random.default_rng(2), 300, 300))
    os.kill(replica, signal.SIGKILL)
    request.join()
    [answer] = answers
    assert isinstance(answer, httpx.Response), repr(answer)
    assert answer.status_code == 503 and answer.headers["content-type"] == "application/json", answer.text
    assert answer.text.count("\n") == 0 and answer.headers["retry-after"] == "1"
    assert answer.json() == {"error": "the replica serving this request stopped before it answered (killed, out of "
                                      "memory or crashed); retry"}


def test_sigterm_answers_the_request_in_flight_then_exits_143(server, tiny_weights):
    url, process, stderr = server
    wait_ready(url, process, stderr)  # after the test above, Ray Serve has started a new replica
    image = random_image(np.random.default_rng(3), 300, 300)
    request, answers = in_flight(url, image)
    process.send_signal(signal.SIGTERM)
    request.join()
    assert process.wait(timeout=120) == 128 + signal.SIGTERM, stderr.read_text()[-3000:]
    [answer] = answers
    assert isinstance(answer, httpx.Response), repr(answer)  # was: "Server disconnected without sending a response"
    assert answer.status_code == 200, answer.text
    assert np.array_equal(decoded(answer.content), reference(image, tiny_weights))
    lines = stderr.read_text().splitlines()
    assert lines[-1] == "srgan-fast serve: stopped by SIGTERM; every request in flight was answered"
