"""uvicorn's server with the stop rules of ``srgan-fast serve``: SIGINT, SIGTERM and SIGHUP each stop it the same
way, and draining has a deadline.

uvicorn alone handles SIGINT and SIGTERM only (SIGHUP would kill the process mid-request), and after draining it
raises the signal again for the caller to see; where SIGINT was ignored, as a shell does for a background job,
that second SIGINT is ignored too and the server exits 0 as if nothing had stopped it. Here the signal is kept
in ``stopped_by`` instead, for the caller's stop line and 128 + N exit status.

Draining: the server stops accepting, refuses new requests on open connections (503), lets every admitted
request finish, and gives uploads still being read until ``drain_s`` to complete; then it cuts them
(``srgan_fast.serve.drain``). Answers are bounded the same way: uvicorn waits for every connection to close, and
one whose client has stopped reading a large answer never does (its bytes wait in the server's write buffer
behind full socket buffers), so an answer still waiting at the deadline is cut, its connection aborted; one that
becomes ready later (an admitted request finishing) gets ``drain_s`` from when it starts to wait. A second stop
signal cuts at once whatever is in flight.
"""
from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from typing import Iterator

import uvicorn

from srgan_fast.io.signals import STOP_SIGNALS
from srgan_fast.serve.drain import Drain

DEFAULT_DRAIN_S = 30.0
# How often, while draining, the connections' write buffers are looked at: the cut comes at most this late.
ANSWER_CHECK_S = 0.1


class DrainingServer(uvicorn.Server):
    """``uvicorn.Server`` over an app of ``srgan_fast.serve.create_app``; after ``run``, ``stopped_by`` is the
    signal that stopped it (None: stopped otherwise) and ``stop_summary()`` what stopping cut."""

    def __init__(self, config: uvicorn.Config, drain: Drain, drain_s: float = DEFAULT_DRAIN_S):
        super().__init__(config)
        if not drain_s >= 0:
            raise ValueError(f"the drain deadline must be 0 or more seconds, got {drain_s}")
        self.drain, self.drain_s = drain, drain_s
        self.stopped_by: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._cut_answers_now = False

    async def serve(self, sockets=None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
            yield
            return
        # A SIGHUP ignored at start is nohup's: the server is meant to outlive its terminal. SIGINT is taken even
        # where ignored: a shell ignores it for background jobs only so that Ctrl-C spares them, and a
        # `kill -INT` sent to the server itself asks it to stop (uvicorn takes it too).
        taken = [signum for signum in STOP_SIGNALS
                 if signum != getattr(signal, "SIGHUP", None) or signal.getsignal(signum) is not signal.SIG_IGN]
        previous = {signum: signal.signal(signum, self.handle_exit) for signum in taken}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, signal.SIG_DFL if handler is None else handler)

    def handle_exit(self, sig: int, frame) -> None:
        if self.stopped_by is None:
            self.stopped_by = sig
            self.should_exit = True
        elif self._loop is not None:
            # Not uvicorn's force_exit: that abandons the requests' tasks, which then die with a traceback each
            # and still wait for their worker threads. Cutting their work lets each answer 503 at once instead.
            # Run in the loop, after this handler: the handler may have interrupted a scheduler call there.
            self._loop.call_soon_threadsafe(self._cut_all)

    def _cut_all(self) -> None:
        self._cut_answers_now = True
        self.drain.cut_all()

    async def shutdown(self, sockets=None) -> None:
        self.drain.begin()
        loop = asyncio.get_running_loop()
        deadline = loop.call_later(self.drain_s, self.drain.cut_uploads, f"at its {self.drain_s:g} s drain deadline")
        answers = loop.create_task(self._cut_answers_not_taken())
        try:
            await super().shutdown(sockets)
        finally:
            deadline.cancel()
            answers.cancel()

    async def _cut_answers_not_taken(self) -> None:
        """Until the server has stopped: abort each connection whose answer is still waiting in its write buffer at
        the deadline, or, when it began to wait after it, ``drain_s`` later; all of them at a second stop signal.

        The write buffer holds what the client has not made room for: an answer the socket buffers take whole
        leaves it empty at once and never holds the server (the kernel delivers it after the process is gone)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        deadline = now + self.drain_s
        waiting_since: dict[object, float] = {}
        while True:
            for connection in list(self.server_state.connections):
                transport = getattr(connection, "transport", None)
                unsent = transport.get_write_buffer_size() if transport is not None else 0
                if not unsent:
                    waiting_since.pop(connection, None)
                    continue
                since = waiting_since.setdefault(connection, now)
                if self._cut_answers_now:
                    when = "at a second stop signal"
                elif now >= deadline and since <= deadline:
                    when = f"at its {self.drain_s:g} s drain deadline"
                elif now >= since + self.drain_s and since > deadline:
                    when = f"{self.drain_s:g} s after it was ready, past the drain deadline"
                else:
                    continue
                waiting_since.pop(connection)
                self.drain.answer_cut(unsent, when)
                transport.abort()  # close() would wait for the client to take the buffer
            # Wake at the deadline itself, as the uploads' cut does, and every ANSWER_CHECK_S around it.
            await asyncio.sleep(min(ANSWER_CHECK_S, deadline - now) if now < deadline else ANSWER_CHECK_S)
            now = loop.time()

    def stop_summary(self) -> str:
        """What stopping did to the requests in flight, for the stop line."""
        return self.drain.summary() or "every request in flight was answered"
