"""uvicorn's server with the stop rules of ``srgan-fast serve``: SIGINT, SIGTERM and SIGHUP each stop it the same
way, and draining has a deadline.

uvicorn alone handles SIGINT and SIGTERM only (SIGHUP would kill the process mid-request), and after draining it
raises the signal again for the caller to see; where SIGINT was ignored, as a shell does for a background job,
that second SIGINT is ignored too and the server exits 0 as if nothing had stopped it. Here the signal is kept
in ``stopped_by`` instead, for the caller's stop line and 128 + N exit status.

Draining: the server stops accepting, refuses new requests on open connections (503), lets every admitted
request finish, and gives uploads still being read until ``drain_s`` to complete; then it cuts them
(``srgan_fast.serve.drain``). A second stop signal cuts at once whatever is in flight.
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
            self._loop.call_soon_threadsafe(self.drain.cut_all)

    async def shutdown(self, sockets=None) -> None:
        self.drain.begin()
        deadline = asyncio.get_running_loop().call_later(self.drain_s, self.drain.cut_uploads,
                                                         f"at its {self.drain_s:g} s drain deadline")
        try:
            await super().shutdown(sockets)
        finally:
            deadline.cancel()

    def stop_summary(self) -> str:
        """What stopping did to the requests in flight, for the stop line."""
        return self.drain.summary() or "every request in flight was answered"
