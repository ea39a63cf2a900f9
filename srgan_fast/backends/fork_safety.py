"""What a backend needs to know after ``os.fork()``: whether this process is a forked child, and a thread born in it.

Only the forking thread survives a fork, and it keeps its thread-local state. GNU OpenMP (libgomp, which
srgan_fast._C links) keeps a thread's pool of worker threads there: in the child that pool names workers that
no longer exist, and the next parallel region waits on them forever. A thread created in the child has no pool
yet, so libgomp gives it a fresh one; the native engine therefore runs there in a forked child (``run_in_child``).
Locks held by another thread at the fork stay held in the child, so engines built before it are rebuilt
(``generation`` changes with every fork) rather than reused.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

T = TypeVar("T")

_generation = 0  # forks this process descends from (0: not a forked child)
_parent_pid: int | None = None
_runner: ThreadPoolExecutor | None = None
_lock = threading.Lock()  # made again in every child: a lock held at the fork stays held there


def generation() -> int:
    """How many forks separate this process from the one that imported srgan_fast; changes in every child."""
    return _generation


def forked_from() -> int | None:
    """The pid this process was forked from, or None when it was not forked after srgan_fast was imported."""
    return _parent_pid


def lock() -> threading.Lock:
    """A lock made in this process since its last fork (never one a vanished thread holds)."""
    return _lock


def run_in_child(function: Callable[..., T], *args) -> T:
    """``function(*args)``; in a forked child on one thread created there (see the module docstring)."""
    global _runner
    if _generation == 0:
        return function(*args)
    with _lock:
        if _runner is None:
            _runner = ThreadPoolExecutor(1, thread_name_prefix="srgan_fast-after-fork")
    return _runner.submit(function, *args).result()


def _after_fork_in_child() -> None:
    global _generation, _parent_pid, _runner, _lock
    _generation += 1
    _parent_pid = os.getppid()
    _runner = None  # its thread stayed behind in the parent
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX; Windows cannot fork
    os.register_at_fork(after_in_child=_after_fork_in_child)
