"""Ray itself, for the image and video runs and ``serve --ray`` alike: importing it, connecting (keeping this
process's stop signals), and how many workers the options and the cluster allow."""
from __future__ import annotations

import contextlib
import gc
import logging
import os
import re
import signal
import sys
import tempfile
import threading
from typing import Iterator

from srgan_fast.io.signals import STOP_SIGNALS


class RayMissing(ImportError):
    """Ray (or Ray Data) is not installed, and the run needs it."""


def import_ray():
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise RayMissing(f"running on Ray needs Ray Data ({exc}); install it with pip install 'srgan_fast[ray]'") \
            from None
    return ray


# A line of Ray's C++ logging at INFO or WARNING level: "[2026-12-07 00:22:56,602 I 13993 13993] logging.cc:303: ..."
_RAY_CPP_NOTICE = re.compile(r"\[\d{4}-\d\d-\d\d [\d:,.]+ [IW] \d+ \d+\] ")


@contextlib.contextmanager
def _quiet_start(quiet: bool) -> Iterator[None]:
    """Around ``ray.init``: Ray's C++ logging (the driver's core worker; the processes of a local instance log to
    files) takes its level from the environment when it starts, and prints at INFO that it did so. quiet: the level
    is set to fatal (its error lines, such as one about an actor's constructor arguments on every run, are not the
    user's concern), and the lines Ray prints on stderr while starting are dropped, all but its errors."""
    if not quiet:
        yield
        return
    saved_level = os.environ.get("RAY_BACKEND_LOG_LEVEL")
    os.environ["RAY_BACKEND_LOG_LEVEL"] = "fatal"
    sys.stderr.flush()
    saved_stderr = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved_stderr, 2)
            os.close(saved_stderr)
            if saved_level is None:
                os.environ.pop("RAY_BACKEND_LOG_LEVEL", None)
            else:
                os.environ["RAY_BACKEND_LOG_LEVEL"] = saved_level
            caught.seek(0)
            lines = caught.read().decode(errors="replace").splitlines(keepends=True)
            sys.stderr.write("".join(line for line in lines if not _RAY_CPP_NOTICE.match(line)))


def init_ray(ray, address: str | None, *, quiet: bool = False) -> None:
    """``ray.init(address)`` that leaves this process's handlers of SIGINT, SIGTERM and SIGHUP as they were.

    ray.init installs its own SIGTERM handler, which exits on the spot with status 15 and Ray's crash banner: the
    command's own (``stop_on_signals``) would never run, so neither would the cleanup and the one stop line it
    leads to, nor the shell's 143. Every connection to Ray goes through here, so this is said once.

    quiet: Ray's own lines (its start, its warnings, the workers' output) are not shown; its errors still are.
    A local instance started here has no dashboard: on a small machine its processes take CPU from the workers.
    """
    options = {}
    if quiet:
        options.update(logging_level=logging.ERROR, log_to_driver=False)
    if address in (None, "local") and not os.environ.get("RAY_ADDRESS"):
        options["include_dashboard"] = False
    main_thread = threading.current_thread() is threading.main_thread()
    saved = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS} if main_thread else {}
    try:
        with _quiet_start(quiet):
            ray.init(address=address, **options)
    finally:
        for signum, handler in saved.items():
            if handler is not None:  # None: not installed from Python, cannot be put back
                signal.signal(signum, handler)


def starts_ray_here(address: str | None) -> bool:
    """Whether connecting for ``address`` would start a Ray instance on this machine for this run alone: no address
    given, none in RAY_ADDRESS, and this process not connected to one (asked without importing Ray, which takes a
    second and more)."""
    ray = sys.modules.get("ray")
    connected = ray is not None and getattr(ray, "is_initialized", lambda: False)()
    return address is None and not os.environ.get("RAY_ADDRESS") and not connected


class _QuietAfterStop:
    """What Ray prints after a stopped run's shutdown, kept off the console until this process next connects.

    Ray Data does not wait for its threads when a run ends early (its scheduling loop gets 2 s, its prefetching
    threads none), and its iterators shut their executors down when they are garbage-collected, which may be
    after the shutdown: both then fail on the objects the shutdown took away, the threads through Ray's loggers,
    the finalizers as "Exception ignored in ...", each with a traceback after the command's one stop line. Ray's
    log files keep the loggers' lines."""

    def __init__(self):
        self._levels: list[tuple[logging.Handler, int]] = []
        self._hook = None

    @staticmethod
    def _consoles() -> list[logging.Handler]:
        """The handlers of Ray's and Ray Data's loggers that print on the console (not their log files)."""
        return [handler for name in ("ray", "ray.data") for handler in logging.getLogger(name).handlers
                if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)]

    def start(self) -> None:
        for handler in self._consoles():
            self._levels.append((handler, handler.level))
            handler.setLevel(logging.CRITICAL + 1)
        if self._hook is None:
            self._hook = previous = sys.unraisablehook

            def drop_ray_finalizers(unraisable) -> None:
                module = getattr(unraisable.object, "__module__", None) or ""
                if module.split(".")[0] != "ray":
                    previous(unraisable)

            sys.unraisablehook = drop_ray_finalizers

    def end(self) -> None:
        while self._levels:
            handler, level = self._levels.pop()
            handler.setLevel(level)
        if self._hook is not None:
            sys.unraisablehook, self._hook = self._hook, None


_quiet_after_stop = _QuietAfterStop()


@contextlib.contextmanager
def ray_connected(ray, address: str | None, *, quiet: bool = False) -> Iterator[None]:
    """Use the Ray this process is already connected to, or connect (or start a local one) for this run only.

    Stopped (Ctrl-C, SIGTERM, SIGHUP), Ray Data's iterators that nothing refers to any more are finalized while
    Ray is still up, and what Ray prints after the shutdown stays off the console until this process next
    connects (_QuietAfterStop)."""
    if ray.is_initialized():
        yield
        return
    _quiet_after_stop.end()
    init_ray(ray, address, quiet=quiet)
    try:
        yield
    except KeyboardInterrupt:
        gc.collect()  # Ray Data's unreachable iterators shut their executors down now, not after the shutdown
        _quiet_after_stop.start()
        raise
    finally:
        ray.shutdown()


def check_worker_options(workers, gpus_per_worker, threads_per_worker) -> None:
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a positive number of actors or None (from the cluster), got {workers!r}")
    if gpus_per_worker < 0:
        raise ValueError(f"gpus_per_worker must be 0 (CPU workers) or more, got {gpus_per_worker!r}")
    if threads_per_worker is not None and (not isinstance(threads_per_worker, int) or threads_per_worker < 1):
        raise ValueError(f"threads_per_worker must be a positive number of threads, got {threads_per_worker!r}")


def cluster_capacity(ray, gpus_per_worker: float, threads_per_worker: int) -> int:
    """How many workers of this size the cluster has room for now (at least one): its free CPUs (GPUs), so that
    every worker of a pool sized from it can start (on a cluster shared with other work, its total would ask
    for workers that wait for resources that other work holds)."""
    resources = ray.available_resources()
    if gpus_per_worker:
        return max(1, int(resources.get("GPU", 0) // gpus_per_worker))
    return max(1, int(resources.get("CPU", 1) // threads_per_worker))
