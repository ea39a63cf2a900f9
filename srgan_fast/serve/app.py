"""The ASGI app: ``create_app(...)`` -> a FastAPI app with the upscale API, health, metrics and the web page.

The event loop only reads bodies, checks limits and watches for disconnects; decoding, tile gathering and
scattering, and encoding run in worker threads (``Service.process``), the engines in the scheduler's lanes.
A client that goes away while its request waits has its remaining windows dropped (``Job.cancel``). On
shutdown (``srgan_fast.serve.server``: stop accepting, answer the admitted requests, cut uploads still being read
at the drain deadline) the lanes stop.
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
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect

from srgan_fast.api import Upscaler
from srgan_fast.serve.drain import Drain
from srgan_fast.serve.limits import Limits, Refusal, check_bearer
from srgan_fast.serve.scheduler import Cancelled, Job
from srgan_fast.serve.service import Service, parse_options

log = logging.getLogger("srgan_fast.serve")

# Which process answered, for load balancers and replicas (Ray Serve) to be told apart.
SERVER_ID = f"{socket.gethostname()}:{os.getpid()}"

# Requests whose work runs at once in threads; each mostly waits on the scheduler, and the pixel-bounded queue,
# not this, bounds the memory they hold. More wait for a thread, holding only their body.
WORKER_THREADS = 64
MULTIPART_ACCEPTED = ("expected multipart/form-data with a boundary and the image as a file field (curl -F "
                      "image=@photo.png), or the image bytes as the body")


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
    app.state.drain = drain = Drain(service)
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
            body = await read_image_body(request, service.limits, drain)
            job = service.scheduler.job()
            with drain.admit(job):
                answer = await run_watching_disconnect(request, service, job, body, options, workers)
        except Refusal as refusal:
            service.metrics.requests.labels(str(refusal.status)).inc()
            return error(refusal.status, refusal.message, refusal.headers)
        except ClientDisconnect:  # gone mid-upload: the client's doing, nobody to answer, nothing to trace
            service.metrics.requests.labels("cancelled").inc()
            log.info("srgan-fast serve: a client disconnected during its upload")
            return Response(status_code=499)
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


async def read_image_body(request: Request, limits: Limits, drain: Drain) -> bytes:
    """The image bytes: the raw body, or the first file of a multipart form; at most ``limits.max_body``.

    Raises ``ClientDisconnect`` when the client goes away mid-body, ``Refusal`` for anything else."""
    declared = request.headers.get("content-length")
    limits.check_declared_body(declared)
    chunks = []
    with drain.reading(declared) as upload:
        async for chunk in request.stream():
            upload.received += len(chunk)
            if upload.received > limits.max_body:
                raise limits.body_too_large(f"more than {limits.max_body} bytes")
            chunks.append(chunk)
    if upload.cut:
        raise Refusal(503, f"the server is stopping: this upload was cut {upload.cut} after {upload.describe()}; "
                           "retry on another", {"Retry-After": "1"})
    body = b"".join(chunks)
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() == "multipart/form-data":
        body = await first_file(request, body, content_type)
    if not body:
        raise Refusal(400, "empty request body: expected the image bytes (or a multipart form with a file)")
    return body


async def first_file(request: Request, body: bytes, content_type: str) -> bytes:
    """The first file of a multipart body already read; a body that is not a form is a 400 naming why."""
    async def replay():
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        async with Request(request.scope, replay).form() as form:
            files = [value for value in form.values() if hasattr(value, "read")]
            if not files:
                raise Refusal(400, f"multipart body has no file: got fields {', '.join(form.keys()) or 'none'}; "
                                   "send the image as a file field (e.g. image=@photo.png)")
            return await files[0].read()
    # Starlette turns the parser's errors into an HTTPException(400) inside an app, a MultiPartException outside.
    except (StarletteHTTPException, MultiPartException) as exc:
        raise Refusal(400, f"malformed multipart body ({multipart_reason(exc)}): received Content-Type "
                           f"{content_type!r} and {len(body)} bytes; {MULTIPART_ACCEPTED}") from None


def multipart_reason(exc: BaseException) -> str:
    """Starlette's reason and the parser's beneath it ("Invalid multipart data" alone says little)."""
    reasons: list[str] = []
    while exc is not None and len(reasons) < 3:
        text = str(getattr(exc, "detail", None) or getattr(exc, "message", None) or exc).strip().rstrip(".")
        if text and text not in reasons:
            reasons.append(text)
        # Starlette raises its HTTPException while handling the parser's exception (its __context__); below that,
        # only what the parser chained on purpose (__cause__): the KeyError behind "Missing boundary" says nothing.
        exc = exc.__cause__ or (exc.__context__ if isinstance(exc, StarletteHTTPException) else None)
    return ": ".join(reasons) or "unreadable"


async def run_watching_disconnect(request: Request, service: Service, job: Job, body: bytes, options,
                                  workers: anyio.CapacityLimiter) -> tuple[bytes, str] | None:
    """Run the request's work in a thread as ``job``; if the client disconnects first, cancel it and return None."""
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
        raise Refusal(503, "the server stopped before this request's answer was ready; retry",
                      {"Retry-After": "1"})
    return None if gone else answer
