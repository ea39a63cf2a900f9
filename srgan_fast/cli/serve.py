"""``srgan-fast serve``: the HTTP service and web page of srgan_fast.serve, on uvicorn or as a Ray Serve app."""
from __future__ import annotations

import argparse
import ipaddress
import logging
import sys

from srgan_fast.cli.common import USER_ERRORS, add_model_options, argument_type
from srgan_fast.io.signals import report_stop
from srgan_fast.io.signals import Stopped
from srgan_fast.options import parse_bytes
from srgan_fast.weights import DEFAULT_MODEL


def register(subparsers) -> None:
    """Adds ``serve``."""
    from srgan_fast.serve.limits import DEFAULT_MAX_BODY, DEFAULT_MAX_PIXELS, DEFAULT_MAX_QUEUE_PIXELS

    serve = subparsers.add_parser("serve", help="an HTTP API and web page (pip install 'srgan_fast[serve]')")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s, this machine only)")
    serve.add_argument("--port", type=int, default=8000, help="default: %(default)s")
    add_model_options(serve, many=True)
    serve.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                       help="input pixels per request, all frames (larger: 413; default: %(default)s)")
    serve.add_argument("--max-body", type=argument_type(parse_bytes), default=DEFAULT_MAX_BODY, metavar="SIZE",
                       help="request body size (larger: 413; default: 64M)")
    serve.add_argument("--max-queue-pixels", type=int, default=DEFAULT_MAX_QUEUE_PIXELS,
                       help="pixels of work admitted at once, x8 with tta (beyond it: 503 with Retry-After; "
                       "default: %(default)s)")
    serve.add_argument("--api-key-file", help="a file holding a token that /v1/ requires as "
                       "'Authorization: Bearer <token>'")
    serve.add_argument("--batch-wait-ms", type=float, default=5.0,
                       help="how long a batch that is not full waits for windows of other requests (default: 5)")
    serve.add_argument("--drain-seconds", type=argument_type(_drain_seconds), default=30.0, metavar="SECONDS",
                       help="on SIGTERM, SIGINT or SIGHUP: how long uploads still being read may take to complete "
                       "and answers being sent to be taken; then they are cut (an upload answered 503); admitted "
                       "requests are answered, each answer ready later given as long, unless a second signal "
                       "comes (default: 30)")
    serve.add_argument("--no-express", action="store_true",
                       help="no express lane (a one-thread engine for small requests while big ones run)")
    serve.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                       help="run as a Ray Serve app on the cluster at ADDRESS (auto, ray://head:10001), or alone: "
                       "the one RAY_ADDRESS names, else a local instance (pip install 'srgan_fast[serve-ray]')")
    serve.add_argument("--replicas", type=argument_type(_replicas), metavar="N|auto",
                       help="Ray Serve replicas, or auto (Ray Serve's autoscaling) (default: one per GPU, else 1)")
    serve.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from srgan_fast.serve.app import create_app
        from srgan_fast.serve.limits import Limits, read_api_key
        from srgan_fast.serve.server import DrainingServer
    except ModuleNotFoundError as exc:
        print(f"error: srgan-fast serve needs the serve extra ({exc.name} is missing): pip install "
              "'srgan_fast[serve]'", file=sys.stderr)
        return 2
    try:
        limits = Limits(args.max_pixels, args.max_body, args.max_queue_pixels)
        api_key = read_api_key(args.api_key_file) if args.api_key_file else None
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if api_key is None and not _loopback(args.host):
        print(f"warning: serving on {args.host} without --api-key-file: anyone who can reach it may use it",
              file=sys.stderr)
    options = dict(models=args.model or [DEFAULT_MODEL], backend=args.backend, device=args.device,
                   precision=args.precision, tile=args.tile, memory_budget=args.memory_budget, limits=limits,
                   api_key=api_key, express=not args.no_express, max_wait_s=args.batch_wait_ms / 1000)
    if args.ray is not None:
        from srgan_fast.serve.ray_serve import run_on_ray

        return run_on_ray(args.ray or None, args.replicas, args.host, args.port, options)
    try:
        app = create_app(**options)
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # The multipart parser logs a warning line for each malformed form it meets; the client is answered 400 with
    # the reason and the metrics count it, so in the server's log those lines are noise anyone can cause.
    logging.getLogger("python_multipart").setLevel(logging.ERROR)
    service = app.state.service
    print(f"srgan-fast serve: {', '.join(up.describe() for up in service.upscalers.values())}; lanes "
          f"{', '.join(service.lanes)}; http://{args.host}:{args.port}/", file=sys.stderr, flush=True)
    # The server takes SIGINT, SIGTERM and SIGHUP while it runs (srgan_fast.serve.server): it stops accepting,
    # answers the admitted requests, cuts uploads at the drain deadline, runs the app's shutdown, then returns
    # here with the signal, for the same stop line and 128 + N status as every other command.
    server = DrainingServer(uvicorn.Config(app, host=args.host, port=args.port, log_level="warning"),
                            app.state.drain, args.drain_seconds)
    server.run()
    if server.stopped_by is None:
        return 0
    return report_stop(Stopped(server.stopped_by), server.stop_summary(), prog="srgan-fast serve")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _drain_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise ValueError(f"expected a number of seconds, 0 or more, got {text!r}")
    return seconds


def _replicas(text: str) -> int | str:
    if text.strip().lower() == "auto":
        return "auto"
    if text.strip().isdigit() and int(text) > 0:
        return int(text)
    raise ValueError(f"--replicas must be a positive number or auto, got {text!r}")
