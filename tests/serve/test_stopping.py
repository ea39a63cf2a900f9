"""Stopping ``srgan-fast serve``, a real process: SIGINT, SIGTERM and SIGHUP each print one stop line and exit
128 + N, a background job's (SIGINT ignored by its shell) included; admitted requests are answered, and an upload
that stalls, or an answer its client does not read, is cut at the --drain-seconds deadline instead of holding the
server open."""
from __future__ import annotations

import contextlib
import re
import signal
import socket
import threading
import time

import numpy as np
import pytest

from serve_helpers import cli_server, decoded, metric, png_bytes, random_image, reference

import httpx  # noqa: E402


def stop_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if "stopped by" in line]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
@pytest.mark.slow
def test_each_stop_signal_prints_one_line_and_exits_128_plus_n(tiny_weights, tmp_path, signum):
    # Started as a background job: the shell has SIGINT ignored, yet `kill -INT` is asked of this very process.
    with cli_server(tiny_weights, tmp_path, background=True) as (process, url):
        process.send_signal(signum)
        assert process.wait(timeout=60) == 128 + signum
        lines = stop_lines(process.stderr.read())
    assert lines == [f"srgan-fast serve: stopped by {signum.name}; every request in flight was answered"]


def start_stalled_upload(url: str) -> socket.socket:
    """A request that declares 1000 bytes and sends 500, left open; returns once the app is reading its body
    (uvicorn sends "100 Continue" when the app first asks for the body)."""
    host, port = url.removeprefix("http://").split(":")
    client = socket.create_connection((host, int(port)))
    client.sendall(f"POST /v1/upscale HTTP/1.1\r\nHost: {host}\r\nContent-Type: image/png\r\n"
                   "Content-Length: 1000\r\nExpect: 100-continue\r\n\r\n".encode())
    client.settimeout(60)
    assert client.recv(100).startswith(b"HTTP/1.1 100"), "the app never asked for the body"
    client.sendall(b"x" * 500)
    return client


def read_answer(client: socket.socket) -> bytes:
    answer = b""
    while chunk := client.recv(65536):
        answer += chunk
    return answer


@pytest.mark.slow
def test_sigterm_answers_admitted_requests_and_cuts_a_stalled_upload_at_the_deadline(tiny_weights, tmp_path):
    with cli_server(tiny_weights, tmp_path, "--drain-seconds", "1") as (process, url):
        image = random_image(np.random.default_rng(2), 200, 200)
        answers: list[httpx.Response] = []
        request = threading.Thread(target=lambda: answers.append(
            httpx.post(f"{url}/v1/upscale", content=png_bytes(image), timeout=120)))
        request.start()
        while metric(url, "srgan_serve_queue_pixels") == 0:  # admitted: its work is queued
            assert request.is_alive()
            time.sleep(0.005)
        stalled = start_stalled_upload(url)
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        with stalled:
            cut = read_answer(stalled)  # the server answers and closes it: no need for the client to go
        assert time.monotonic() - signalled >= 1, "cut before the deadline"
        request.join()
        assert process.wait(timeout=60) == 128 + signal.SIGTERM
        lines = stop_lines(process.stderr.read())
    assert cut.startswith(b"HTTP/1.1 503"), cut
    assert (b'"error":"the server is stopping: this upload was cut at its 1 s drain deadline after 500 of 1000 '
            b'bytes; retry on another"') in cut
    assert lines == ["srgan-fast serve: stopped by SIGTERM; cut 1 upload not complete at the 1 s drain deadline "
                     "(received 500 of 1000 bytes); every admitted request was answered"]
    assert answers[0].status_code == 200, answers[0].text
    assert np.array_equal(decoded(answers[0].content), reference(image, tiny_weights))


@pytest.mark.slow
def test_a_second_signal_cuts_the_admitted_work_and_answers_503(tiny_weights, tmp_path):
    with cli_server(tiny_weights, tmp_path) as (process, url):
        body = png_bytes(random_image(np.random.default_rng(3), 600, 600))  # 625 windows: seconds of work
        answers: list[httpx.Response] = []
        request = threading.Thread(target=lambda: answers.append(
            httpx.post(f"{url}/v1/upscale", content=body, timeout=120)))
        request.start()
        while metric(url, "srgan_serve_queue_pixels") == 0:
            assert request.is_alive()
            time.sleep(0.005)
        process.send_signal(signal.SIGTERM)
        draining = False  # the first signal seen (two pending at once would be taken lowest number first)
        while not draining:
            try:
                draining = httpx.get(f"{url}/readyz").status_code == 503
            except httpx.TransportError:  # no longer accepting
                draining = True
        process.send_signal(signal.SIGINT)
        request.join()
        assert process.wait(timeout=60) == 128 + signal.SIGTERM  # the first signal's status
        lines = stop_lines(process.stderr.read())
    assert answers[0].status_code == 503
    assert answers[0].json() == {"error": "the server stopped before this request's answer was ready; retry"}
    assert lines == ["srgan-fast serve: stopped by SIGTERM; cut the work of 1 admitted request at a second stop "
                     "signal"]



def post_and_never_read(url: str, body: bytes) -> socket.socket:
    """A client that sends its whole request and then reads nothing, with a small receive window: an answer larger
    than the two sockets' buffers keeps the server's write of it blocked for as long as this client stays."""
    host, port = url.removeprefix("http://").split(":")
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.connect((host, int(port)))
    client.sendall(f"POST /v1/upscale HTTP/1.1\r\nHost: {host}\r\nContent-Type: image/png\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return client


def read_until_cut(client: socket.socket) -> tuple[int, int]:
    """(the Content-Length the answer declared, how many bytes of its body came) once the server has gone."""
    received = b""
    with contextlib.suppress(ConnectionResetError):  # aborted: the bytes still in flight are dropped
        while chunk := client.recv(1 << 20):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return int(re.search(rb"content-length: ([0-9]+)", head, re.IGNORECASE)[1]), len(body)


def unsent_bytes(line: str) -> int:
    return int(re.search(r"\(([0-9]+) bytes unsent\)", line)[1])


# A 5.8 MB answer: more than Linux's loopback socket buffers hold (4 MB of send buffer at most by default).
def large_answer_body() -> bytes:
    return png_bytes(random_image(np.random.default_rng(4), 300, 300, dtype=np.uint16))


@pytest.mark.slow
def test_sigterm_cuts_an_answer_its_client_does_not_read_at_the_deadline(tiny_weights, tmp_path):
    with cli_server(tiny_weights, tmp_path, "--drain-seconds", "1") as (process, url):
        with post_and_never_read(url, large_answer_body()) as client:
            while metric(url, "srgan_serve_requests_total", 'status="200"') == 0:  # answered: its bytes written
                assert process.poll() is None
                time.sleep(0.01)
            signalled = time.monotonic()
            process.send_signal(signal.SIGTERM)
            status = process.wait(timeout=30)  # before the fix: still running until the client went
            stopped_after = time.monotonic() - signalled
            declared, received = read_until_cut(client)
        lines = stop_lines(process.stderr.read())
    assert status == 128 + signal.SIGTERM
    assert 1 <= stopped_after < 10, stopped_after
    assert len(lines) == 1 and lines[0].startswith(
        "srgan-fast serve: stopped by SIGTERM; cut 1 answer not yet taken by its client at the 1 s drain deadline "
        "("), lines
    assert lines[0].endswith(" bytes unsent); every other admitted request was answered"), lines
    assert 0 < unsent_bytes(lines[0]) <= declared - received


@pytest.mark.slow
def test_an_answer_ready_after_the_deadline_gets_the_drain_time_to_be_taken(tiny_weights, tmp_path):
    with cli_server(tiny_weights, tmp_path, "--drain-seconds", "0") as (process, url):
        with post_and_never_read(url, large_answer_body()) as client:
            while metric(url, "srgan_serve_queue_pixels") == 0:  # admitted, its work (over a second) queued
                assert process.poll() is None
                time.sleep(0.005)
            process.send_signal(signal.SIGTERM)
            status = process.wait(timeout=30)
            declared, received = read_until_cut(client)
        lines = stop_lines(process.stderr.read())
    assert status == 128 + signal.SIGTERM
    assert len(lines) == 1 and lines[0].startswith(
        "srgan-fast serve: stopped by SIGTERM; cut 1 answer not yet taken by its client 0 s after it was ready, "
        "past the drain deadline ("), lines
    assert 0 < unsent_bytes(lines[0]) <= declared - received
