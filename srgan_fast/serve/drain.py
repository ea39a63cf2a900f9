"""The requests in flight while the server stops, and what stopping cuts of them.

A request is *uploading* while its body is read and *admitted* once the whole body is in; from then on its work
is bounded (the pixel queue) and it is answered. An upload depends on the client: one that sends half a body and
then nothing would hold the server open forever, so at the drain deadline every upload still being read is cut
(``cut_uploads``) and answered 503. An answer depends on the client too: one that stops reading leaves the
server's write of a large answer blocked on full socket buffers, so answers not yet taken are cut as well (the
server does that, ``srgan_fast.serve.server``, and records it here with ``answer_cut``). A second stop signal
cuts everything at once (``cut_all``): the uploads, the admitted requests' windows not yet run (their requests
answered 503) and the answers being sent. ``summary`` says what was cut, for the server's stop line.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Iterator

import anyio

from srgan_fast.serve.scheduler import Job


@dataclass(eq=False)
class Upload:
    """One request body being read; ``scope`` is cancelled to cut it."""

    declared: int | None  # Content-Length, None when chunked
    received: int = 0
    cut: str | None = None  # when it was cut: "at its 30 s drain deadline", "at a second stop signal"
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)

    def describe(self) -> str:
        of = f" of {self.declared}" if self.declared is not None else ""
        return f"{self.received}{of} bytes"


class Drain:
    """What ``srgan_fast.serve.server.DrainingServer`` needs of the app to stop within a deadline.

    Only the event loop's thread touches it (the request handlers and the server's shutdown), so it needs no lock.
    service: the app's ``srgan_fast.serve.service.Service``.
    """

    def __init__(self, service):
        self.service = service
        self.uploads: set[Upload] = set()
        self.jobs: set[Job] = set()
        self.cut: list[Upload] = []
        self.cut_requests = 0
        self.cut_answers: list[tuple[int, str]] = []  # (bytes of it the server still held, when it was cut)

    def begin(self) -> None:
        """The server has stopped accepting: /readyz says so, and new requests on open connections get 503."""
        self.service.draining = True

    @contextlib.contextmanager
    def reading(self, declared: str | None) -> Iterator[Upload]:
        """Around reading one body: within it, the body's reads may be cut (the upload's ``scope``)."""
        upload = Upload(int(declared) if declared is not None and declared.isdigit() else None)
        self.uploads.add(upload)
        try:
            with upload.scope:
                yield upload
        finally:
            self.uploads.discard(upload)

    @contextlib.contextmanager
    def admit(self, job: Job) -> Iterator[None]:
        """Around an admitted request's work (``job``), until its answer is ready."""
        self.jobs.add(job)
        try:
            yield
        finally:
            self.jobs.discard(job)

    def cut_uploads(self, when: str) -> None:
        """Every upload still being read stops, its request answered 503; ``when`` says why, in messages."""
        for upload in list(self.uploads):
            upload.cut = when
            self.cut.append(upload)
            upload.scope.cancel()

    def cut_all(self) -> None:
        """A second stop signal: the uploads are cut, and the admitted requests' windows not yet run dropped."""
        self.begin()
        self.cut_uploads("at a second stop signal")
        for job in list(self.jobs):
            self.cut_requests += 1
            job.cancel()
        self.jobs.clear()

    def answer_cut(self, unsent: int, when: str) -> None:
        """The server closed a connection whose answer its client had not taken, ``unsent`` bytes of it unsent."""
        self.cut_answers.append((unsent, when))

    def summary(self) -> str:
        """What stopping cut, for the stop line; '' when nothing was."""
        parts = []
        if self.cut:
            cut = self.cut
            parts.append(f"cut {len(cut)} upload{'s' if len(cut) > 1 else ''} not complete "
                         f"{_whens(upload.cut for upload in cut)} "
                         f"(received {_first_three([upload.describe() for upload in cut])})")
        if self.cut_answers:
            answers = self.cut_answers
            parts.append(f"cut {len(answers)} answer{'s' if len(answers) > 1 else ''} not yet taken by "
                         f"{'their clients' if len(answers) > 1 else 'its client'} "
                         f"{_whens(when for _, when in answers)} "
                         f"({_first_three([str(unsent) for unsent, _ in answers])} bytes unsent)")
        if self.cut_requests:
            parts.append(f"cut the work of {self.cut_requests} admitted request"
                         f"{'s' if self.cut_requests > 1 else ''} at a second stop signal")
        elif parts:
            parts.append(f"every {'other ' if self.cut_answers else ''}admitted request was answered")
        return "; ".join(parts)


def _first_three(items: list[str]) -> str:
    return ", ".join(items[:3]) + (", ..." if len(items) > 3 else "")


def _whens(whens) -> str:
    """The distinct moments things were cut ("at its 30 s drain deadline"), as the stop line words them."""
    return " or ".join(dict.fromkeys(when.replace("its ", "the ") for when in whens))
