"""Ray itself, for the image and video runs alike: importing it, connecting for one run, and how many workers
the options and the cluster allow."""
from __future__ import annotations

import contextlib
from typing import Iterator


def import_ray():
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise ImportError(f"running on Ray needs Ray Data ({exc}); install it with pip install 'srgan_fast[ray]'") \
            from None
    return ray


@contextlib.contextmanager
def ray_connected(ray, address: str | None) -> Iterator[None]:
    """Use the Ray this process is already connected to, or connect (or start a local one) for this run only."""
    if ray.is_initialized():
        yield
        return
    ray.init(address=address)
    try:
        yield
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
    """How many workers of this size the cluster holds now (at least one)."""
    resources = ray.cluster_resources()
    if gpus_per_worker:
        return max(1, int(resources.get("GPU", 0) // gpus_per_worker))
    return max(1, int(resources.get("CPU", 1) // threads_per_worker))
