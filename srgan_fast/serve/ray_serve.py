"""``srgan-fast serve --ray``: the same app as a Ray Serve deployment, one ``create_app`` per replica.

Each replica builds the app that ``srgan-fast serve`` runs (``serve.ingress`` with a builder, evaluated in the
replica: models loaded, engines warmed up, its own scheduler and queue), so batching, limits and metrics are
per replica and Ray Serve's proxy spreads requests over the replicas. Where the cluster has GPUs there is one
replica per GPU by default, each holding one; otherwise one replica, or as many as asked, sharing the CPUs.
Model paths must exist on every node (shipped names always do).
"""
from __future__ import annotations

import sys
import threading

from srgan_fast.io.signals import Stopped, stop_on_signals

APP_NAME = "srgan_fast"


def import_ray_serve():
    try:
        import ray
        from ray import serve
    except ImportError as exc:
        raise ImportError(f"--ray needs Ray Serve ({exc}); install it with pip install 'srgan_fast[serve-ray]'") \
            from None
    return ray, serve


def serve_application(options: dict, replicas: int | str | None = None):
    """The bound Ray Serve application: ``create_app(**options)`` in each of ``replicas`` replicas (an int,
    "auto" for Ray Serve's autoscaling, or None: one per GPU of the cluster, else 1). Ray must be connected."""
    ray, serve = import_ray_serve()
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if replicas is None:
        replicas = gpus or 1
    if gpus:
        actor_options = {"num_gpus": 1, "num_cpus": 1}
    else:
        count = 1 if replicas == "auto" else replicas
        actor_options = {"num_cpus": max(1, int(resources.get("CPU", 1)) // count)}

    def build_app():
        from srgan_fast.serve.app import create_app

        return create_app(**options)

    deployment = serve.deployment(serve.ingress(build_app)(), name=APP_NAME, num_replicas=replicas,
                                  ray_actor_options=actor_options)
    return deployment.bind()


def run_on_ray(address: str | None, replicas: int | str | None, host: str, port: int, options: dict) -> int:
    """Deploy on the cluster at ``address`` (None: RAY_ADDRESS, else a local instance) and serve until stopped."""
    try:
        ray, serve = import_ray_serve()
    except ImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ray.init(address=address)
    try:
        # ray.init put its own SIGTERM handler in place, which aborts on the spot: take the stop signals back, so
        # that they end the deployment (below) or this wait.
        with stop_on_signals():
            serve.start(http_options={"host": host, "port": port})
            serve.run(serve_application(options, replicas), name=APP_NAME, route_prefix="/")
            print(f"srgan-fast serve: on Ray Serve at http://{host}:{port}/ ({replicas or 'one per GPU, else 1'} "
                  "replicas); Ctrl-C or SIGTERM stops it", file=sys.stderr, flush=True)
            threading.Event().wait()
    except KeyboardInterrupt as interrupt:
        stop = Stopped.from_interrupt(interrupt)
        print(f"srgan-fast serve: stopped by {stop.signal_name}; shutting the deployment down", file=sys.stderr)
        return stop.exit_status
    except ray.exceptions.RayError as exc:
        print(f"error: Ray Serve: {' '.join(str(exc).split())[:500]}", file=sys.stderr)
        return 1
    finally:
        serve.shutdown()
        ray.shutdown()
    return 0
