"""The ASGI app: ``create_app(...)`` -> a FastAPI app with the upscale API, health, metrics and the web page.

The event loop only reads bodies, checks limits and watches for disconnects; decoding, tile gathering and
scattering, and encoding run in worker threads (``Service.process``), the engines in the scheduler's lanes.
A client that goes away while its request waits has its remaining windows dropped (``Job.cancel``). On
shutdown (uvicorn's SIGTERM handling stops accepting and lets requests in flight finish) the lanes stop.
"""
from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from importlib import resources
from typing import Mapping, Sequence

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from srgan_fast.api import Upscaler
from srgan_fast.serve.limits import Limits, Refusal, check_bearer
from srgan_fast.serve.scheduler import Cancelled
from srgan_fast.serve.service import Service, parse_options

log = logging.getLogger("srgan_fast.serve")

# Which process answered, for load balancers and replicas (Ray Serve) to be told apart.
SERVER_ID = f"{socket.gethostname()}:{os.getpid()}"

# Requests whose work runs at once in threads; each mostly waits on the scheduler, and the pixel-bounded queue,
# not this, bounds the memory they hold. More wait for a thread, holding only their body.
WORKER_THREADS = 64


def create_app(models: Sequence[str] | Mapping[str, Upscaler] = ("srgan",), *, backend: str = "auto",
               device: str | None = None, precision: str | None = None, tile=None, memory_budget: int | None = None,
               limits: Limits = Limits(), api_key: str | None = None, express: bool = True,
               max_wait_s: float = 0.005) -> FastAPI:
    """The service as an ASGI app, models loaded and engines warmed up before it returns.

    models: names or paths of models to load (the first is the default of ``?model=``), or name -> Upscaler.
    backend, device, precision, tile, memory_budget: as ``srgan_fast.Upscaler``; an answer is exactly
        ``srgan_fast.upscale(image, model=..., backend=..., tile=..., ...)`` of the decoded image.
    limits: body size, pixels per request and the work queue (srgan_fast.serve.limits).
    api_key: when set, /v1/ requires ``Authorization: Bearer <api_key>``.
    express, max_wait_s: the scheduler's express lane and batch-filling wait (srgan_fast.serve.scheduler).
    """
    if isinstance(models, Mapping):
        upscalers = dict(models)
    else:
        upscalers = {}
        for name in models:  # ?model= takes the weights' own name (shipped, or from the file's metadata), not a path
            up = Upscaler(name, backend=backend, device=device, precision=precision, tile=tile,
                          memory_budget=memory_budget)
            upscalers[up.weights.name] = up
    service = Service(upscalers, limits, express=express, max_wait_s=max_wait_s)
    service.warm_up()
    return build_app(service, api_key)


def build_app(service: Service, api_key: str | None = None) -> FastAPI:
    """The routes around a ``Service`` (create_app builds one; the Ray replicas build their own)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        service.draining = True
        await anyio.to_thread.run_sync(service.close)

    app = FastAPI(title="srgan_fast", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.service = service
    workers = anyio.CapacityLimiter(WORKER_THREADS)
    static = resources.files("srgan_fast.serve") / "static"

    def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 404:
            return error(404, f"no route {request.method} {request.url.path}: expected POST /v1/upscale, GET "
                              "/v1/models, /healthz, /readyz, /metrics or the page at /")
        if exc.status_code == 405:
            return error(405, f"{request.method} is not allowed on {request.url.path}", exc.headers)
        return error(exc.status_code, str(exc.detail), exc.headers)

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(static / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.get("/healthz")
    async def healthz():
        return {"status": "alive"}

    @app.get("/readyz")
    async def readyz():
        if service.draining:
            return error(503, "draining: the server is stopping")
        if not service.ready:
            return error(503, "not ready: the models are loading")
        return {"status": "ready", "models": service.models, "lanes": service.lanes}

    @app.get("/metrics")
    async def metrics():
        return Response(service.metrics.render(), media_type=service.metrics.content_type)

    @app.get("/v1/models")
    async def models(request: Request):
        try:
            check_bearer(request.headers.get("authorization"), api_key)
        except Refusal as refusal:
            return error(refusal.status, refusal.message, refusal.headers)
        return {"models": service.model_info()}

    @app.post("/v1/upscale")
    async def upscale(request: Request):
        started = time.perf_counter()
        try:
            check_bearer(request.headers.get("authorization"), api_key)
            options = parse_options(request.query_params, service.models)
            if service.draining:
                raise Refusal(503, "the server is stopping; retry on another", {"Retry-After": "1"})
            body = await read_image_body(request, service.limits)
            answer = await run_watching_disconnect(request, service, body, options, workers)
        except Refusal as refusal:
            service.metrics.requests.labels(str(refusal.status)).inc()
            return error(refusal.status, refusal.message, refusal.headers)
        except MemoryError as exc:
            service.metrics.requests.labels("503").inc()
            return error(503, f"out of memory for this request ({exc}); retry later or send a smaller image",
                         {"Retry-After": "5"})
        except Exception as exc:  # noqa: BLE001 - a bug: one line to the client, the traceback to the log
            log.exception("srgan-fast serve: request failed")
            service.metrics.requests.labels("500").inc()
            return error(500, f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())}")
        if answer is None:  # the client went away: nobody reads an answer
            service.metrics.requests.labels("cancelled").inc()
            return Response(status_code=499)
        service.metrics.requests.labels("200").inc()
        service.metrics.latency.observe(time.perf_counter() - started)
        return Response(answer[0], media_type=answer[1], headers={"X-Srgan-Server": SERVER_ID})

    return app


async def read_image_body(request: Request, limits: Limits) -> bytes:
    """The image bytes: the raw body, or the first file of a multipart form; at most ``limits.max_body``."""
    limits.check_declared_body(request.headers.get("content-length"))
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limits.max_body:
            raise limits.body_too_large(f"more than {limits.max_body} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        async def replay():
            return {"type": "http.request", "body": body, "more_body": False}

        async with Request(request.scope, replay).form() as form:
            files = [value for value in form.values() if hasattr(value, "read")]
            if not files:
                raise Refusal(400, f"multipart body has no file: got fields {', '.join(form.keys()) or 'none'}; "
                                   "send the image as a file field (e.g. image=@photo.png)")
            body = await files[0].read()
    if not body:
        raise Refusal(400, "empty request body: expected the image bytes (or a multipart form with a file)")
    return body


async def run_watching_disconnect(request: Request, service: Service, body: bytes, options,
                                  workers: anyio.CapacityLimiter) -> tuple[bytes, str] | None:
    """Run the request's work in a thread; if the client disconnects first, cancel its job and return None."""
    job = service.scheduler.job()
    gone = stopped = False
    failure: BaseException | None = None  # raised after the task group, which would wrap it in a group

    async def watch():
        nonlocal gone
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                gone = True
                job.cancel()
                return

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(watch)
        answer = None
        try:
            answer = await anyio.to_thread.run_sync(service.process, body, options, job, limiter=workers)
        except Cancelled:
            stopped = not gone
        except Exception as exc:  # noqa: BLE001 - re-raised below, outside the group
            failure = exc
        finally:
            tasks.cancel_scope.cancel()
    if failure is not None:
        raise failure
    if stopped:
        raise Refusal(503, "the server stopped before this request ran; retry", {"Retry-After": "1"})
    return None if gone else answer
