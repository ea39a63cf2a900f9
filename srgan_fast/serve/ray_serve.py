"""``srgan-fast serve --ray``: the same app as a Ray Serve deployment, one ``create_app`` per replica.

Each replica builds the app that ``srgan-fast serve`` runs (``serve.ingress`` with a builder, evaluated in the
replica: models loaded, engines warmed up, its own scheduler and queue), so batching, limits and metrics are
per replica and Ray Serve's proxy spreads requests over the replicas. Where the cluster has GPUs there is one
replica per GPU by default, each holding one; otherwise one replica, or as many as asked, sharing the CPUs.
Model paths must exist on every node (shipped names always do).
"""
from __future__ import annotations

import json
import os
import sys
import threading

APP_NAME = "srgan_fast"
# Ray Serve's hook for the proxies' ASGI middlewares, read in each proxy process from its environment.
PROXY_CALLBACK_ENV = "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"
PROXY_CALLBACK = "srgan_fast.serve.ray_serve:proxy_middlewares"
GRACEFUL_SECONDS = 600


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

    # A replica being stopped answers its requests in flight first, as the plain server does, for up to ten
    # minutes (Ray Serve's default gives them 20 s, then kills the replica).
    deployment = serve.deployment(serve.ingress(build_app)(), name=APP_NAME, num_replicas=replicas,
                                  ray_actor_options=actor_options, graceful_shutdown_timeout_s=GRACEFUL_SECONDS)
    return deployment.bind()


def run_on_ray(address: str | None, replicas: int | str | None, host: str, port: int, options: dict) -> int:
    """Deploy on the cluster at ``address`` (None: RAY_ADDRESS, else a local instance) and serve until stopped.

    Stopped (SIGTERM, Ctrl-C), the application is deleted first: each replica finishes the requests in flight
    (Ray Serve's graceful shutdown) while the proxies, still up, carry their answers back; only then does Serve
    shut down. Shutting it down at once would end the proxies with the connections they hold."""
    try:
        ray, serve = import_ray_serve()
    except ImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from srgan_fast.io.signals import report_stop
    from srgan_fast.distributed.cluster import init_ray

    # Read by the proxies of a local instance started here (they inherit this environment); on a running
    # cluster it must be set on its nodes (README).
    os.environ.setdefault(PROXY_CALLBACK_ENV, PROXY_CALLBACK)
    init_ray(ray, address)
    deployed = False
    try:
        serve.start(http_options={"host": host, "port": port})
        serve.run(serve_application(options, replicas), name=APP_NAME, route_prefix="/")
        deployed = True
        print(f"srgan-fast serve: on Ray Serve at http://{host}:{port}/ ({replicas or 'one per GPU, else 1'} "
              "replicas); Ctrl-C or SIGTERM stops it", file=sys.stderr, flush=True)
        threading.Event().wait()
    except KeyboardInterrupt as interrupt:
        if not deployed:
            return report_stop(interrupt, "nothing was being served yet", prog="srgan-fast serve")
        try:
            serve.delete(APP_NAME)
        except ray.exceptions.RayError as exc:
            return report_stop(interrupt, f"the requests in flight may have been dropped: {_first_line(exc)}",
                               prog="srgan-fast serve")
        return report_stop(interrupt, "every request in flight was answered", prog="srgan-fast serve")
    except ray.exceptions.RayError as exc:
        print(f"error: Ray Serve: {_first_line(exc)}", file=sys.stderr)
        return 1
    finally:
        serve.shutdown()
        ray.shutdown()
    return 0


def _first_line(error: Exception) -> str:
    return " ".join(str(error).split())[:500]


class AnswerWhenReplicaDies:
    """ASGI middleware of the Ray Serve proxies: a request whose replica died before it answered (killed, out of
    memory, a crash in native code) gets the app's one-line JSON error instead of the proxy's plain-text 500."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def watched_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, receive, watched_send)
        # The proxy returns without a response when the replica died (its error is a 500 it leaves to the HTTP
        # server, which writes "Internal Server Error"); a client that went away is not answered by anyone.
        if not started:
            body = json.dumps({"error": "the replica serving this request stopped before it answered (killed, out "
                                        "of memory or crashed); retry"}).encode()
            await send({"type": "http.response.start", "status": 503,
                        "headers": [(b"content-type", b"application/json"), (b"retry-after", b"1"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})


def proxy_middlewares() -> list:
    """The proxies' middleware (Ray Serve calls this where RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH names it)."""
    from starlette.middleware import Middleware

    return [Middleware(AnswerWhenReplicaDies)]
