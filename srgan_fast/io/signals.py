"""SIGTERM and SIGHUP stop a command the way Ctrl-C does.

Schedulers end jobs with SIGTERM and closed terminals send SIGHUP; Python's default for both kills the process
on the spot, before any ``finally`` has removed the temporary file being written. Raised in the main thread as
a ``KeyboardInterrupt``, they go through every cleanup that already handles Ctrl-C. The handlers are installed
only around a command (``srgan_fast.cli.main.main``), never on import, so that a program using srgan_fast as a
library keeps its own.
"""
from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class _Deferral:
    """Blocks of the main thread in which a stop signal waits (see ``stop_signals_deferred``)."""

    depth = 0
    pending: int | None = None


_deferral = _Deferral()


class Stopped(KeyboardInterrupt):
    """A stop signal, raised in the main thread; ``exit_status`` is the shell's 128 + signal number."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_status(self) -> int:
        return 128 + self.signum

    @classmethod
    def from_interrupt(cls, interrupt: KeyboardInterrupt) -> Stopped:
        """The Stopped behind any KeyboardInterrupt: a plain one is Ctrl-C that reached Python's own handler."""
        return interrupt if isinstance(interrupt, Stopped) else cls(signal.SIGINT)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGINT, SIGTERM and SIGHUP raise ``Stopped``; the previous handlers return after it.

    Only the first signal raises: later ones are ignored, so that the cleanup the first one started (removing
    the temporary file in flight) runs to its end. A signal ignored when the block starts (``nohup`` ignores
    SIGHUP) stays ignored. Outside the main thread, where Python cannot install handlers, nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def raise_stopped(signum, frame) -> None:
        if not received:
            received.append(signum)
            if _deferral.depth:
                _deferral.pending = signum  # raised when the deferring block ends
                return
            raise Stopped(signum)

    previous = {}
    try:
        for signum in STOP_SIGNALS:
            if signal.getsignal(signum) is not signal.SIG_IGN:
                previous[signum] = signal.signal(signum, raise_stopped)
        yield
    finally:
        for signum, handler in previous.items():
            # None: a handler installed outside Python, which cannot be put back; the default is the nearest.
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)


@contextlib.contextmanager
def stop_signals_deferred() -> Iterator[None]:
    """A stop signal that ``stop_on_signals`` turns into ``Stopped`` during this block raises when it ends.

    For a few statements that must not be cut in two, such as creating a temporary file and recording its
    name for the cleanup that removes it. Handlers always run in the main thread, so that is where it matters;
    elsewhere it changes nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _deferral.depth += 1
    try:
        yield
    finally:
        _deferral.depth -= 1
        if not _deferral.depth and _deferral.pending is not None:
            signum, _deferral.pending = _deferral.pending, None
            raise Stopped(signum)


def report_stop(interrupt: KeyboardInterrupt, what_was_done: str = "", prog: str = "srgan-fast") -> int:
    """The one line a command stopped by Ctrl-C, SIGTERM or SIGHUP prints, and the shell's 128 + N status."""
    stop = Stopped.from_interrupt(interrupt)
    print(f"{prog}: stopped by {stop.signal_name}" + (f"; {what_was_done}" if what_was_done else ""), file=sys.stderr)
    return stop.exit_status
