"""One request's work, framework-free: options from the query, body -> decoded image -> upscaled through the
shared scheduler -> encoded answer. The ASGI app (app.py) and the Ray Serve deployment (ray_serve.py) both
run it in worker threads.

An answer is exactly ``srgan_fast.upscale`` of the decoded image with the server's options: each frame goes
through ``Upscaler.upscale`` itself, only its backend calls are routed through the scheduler (``run_windows``),
which batches them with other requests' windows of the same shape; the engines' values do not depend on the
batch or the lane (see scheduler.py). Decoding and encoding are the CLI's (srgan_fast.io.images and .save),
from bytes.
"""
from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from typing import Mapping

from srgan_fast.api import Upscaler
from srgan_fast.io.images import ImageFileError, ImageTooLarge, decode_image
from srgan_fast.io.save import encode_image
from srgan_fast.serve.limits import Limits, Refusal, WorkQueue
from srgan_fast.serve.metrics import ServeMetrics
from srgan_fast.serve.scheduler import Job, Lane, TileScheduler
from srgan_fast.tiler.channels import InputError
from srgan_fast.tiler.output_size import OutputSize

OUTPUT_FORMATS = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP"}
CONTENT_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
# The express lane (scheduler.py) takes windows up to this size: small requests, not 256² ones, whose batches
# would then share the cores with the bulk lane's and gain nothing.
EXPRESS_WINDOW_PIXELS = 160 * 160
ANIMATED_FORMATS = ("PNG", "WEBP")  # of OUTPUT_FORMATS, those that keep every frame (APNG, animated WebP)
# zlib level of PNG answers: 1 encodes a 1024² result ~4x faster than the default 6 (0.07 s against 0.32 s on
# a 2-core CPU, a third of a 256² upscale there) for ~15% more bytes; an answer is waited for, a file is kept.
PNG_COMPRESS_LEVEL = 1
OPTION_NAMES = ("model", "outscale", "width", "height", "tta", "format", "quality")


@dataclass(frozen=True)
class RequestOptions:
    model: str
    output_size: OutputSize
    tta: bool
    format: str | None  # Pillow's name; None: the input's where it is one of OUTPUT_FORMATS, else PNG
    quality: int | None


def parse_options(query: Mapping[str, str], models: list[str]) -> RequestOptions:
    """The query's options, each checked; the first model is the default. Refusals are 400 with one line."""
    unknown = sorted(set(query) - set(OPTION_NAMES))
    if unknown:
        raise Refusal(400, f"unknown option {unknown[0]!r}: expected {', '.join(OPTION_NAMES)}")
    model = query.get("model") or models[0]
    if model not in models:
        raise Refusal(400, f"unknown model {model!r}: this server has {', '.join(models)}")
    size = {}
    try:
        if query.get("outscale"):
            size["outscale"] = _number(query["outscale"], "outscale", float)
        for name in ("width", "height"):
            if query.get(name):
                size[name] = _number(query[name], name, int)
        output_size = OutputSize(**size)
    except ValueError as exc:
        raise Refusal(400, str(exc)) from None
    tta = query.get("tta", "false").lower()
    if tta not in ("1", "0", "true", "false", "yes", "no"):
        raise Refusal(400, f"tta must be true or false, got {query['tta']!r}")
    fmt = query.get("format")
    if fmt is not None and fmt.lower() not in OUTPUT_FORMATS:
        raise Refusal(400, f"unknown format {fmt!r}: expected png, jpeg or webp (default: the input's)")
    quality = query.get("quality")
    if quality is not None:
        quality = _number(quality, "quality", int)
        if not 1 <= quality <= 100:
            raise Refusal(400, f"quality must be 1 to 100, got {quality}")
    return RequestOptions(model, output_size, tta in ("1", "true", "yes"), fmt and OUTPUT_FORMATS[fmt.lower()],
                          quality)


def _sizes(frames: list) -> str:
    """'WxH', or the distinct sizes of the frames in order ('16x16 and 24x16')."""
    sizes = list(dict.fromkeys(f"{frame.shape[1]}x{frame.shape[0]}" for frame in frames))
    return " and ".join(sizes)


def _frames(fmt: str, frames: list) -> str:
    return f"a {fmt} of " + (f"{len(frames)} frames of " if len(frames) > 1 else "") + _sizes(frames)


def _number(text: str, name: str, kind: type):
    try:
        value = kind(text)
    except ValueError:
        raise Refusal(400, f"{name} must be {'an integer' if kind is int else 'a number'}, got {text!r}") from None
    if kind is float and not (math.isfinite(value) and value > 0):
        raise Refusal(400, f"{name} must be a positive number, got {text!r}")
    return value


class Service:
    """The loaded models, the scheduler over their engines, the work queue and the metrics.

    upscalers: model name -> Upscaler, the first the default; all on one device.
    express: add the express lane on CPUs with the native engine and two or more cores (see scheduler.py).
    """

    def __init__(self, upscalers: dict[str, Upscaler], limits: Limits = Limits(), *, express: bool = True,
                 max_wait_s: float = 0.005):
        if not upscalers:
            raise ValueError("a service needs at least one model")
        self.upscalers, self.limits = upscalers, limits
        self.models = list(upscalers)
        self.metrics = ServeMetrics()
        self.queue = WorkQueue(limits.max_queue_pixels)
        lanes = [Lane("bulk", {name: up.backend.run for name, up in upscalers.items()})]
        express_runners = self._express_runners() if express else {}
        if express_runners:
            lanes.append(Lane("express", express_runners, EXPRESS_WINDOW_PIXELS))
        self._lanes = lanes
        self.lanes = [lane.name for lane in lanes]
        self.scheduler = TileScheduler(lanes, max_wait_s, on_batch=self._on_batch)
        self.ready = False
        self.draining = False

    def _express_runners(self) -> dict:
        """A one-thread twin of each native CPU engine; none where there is nothing to gain."""
        runners = {}
        for name, up in self.upscalers.items():
            if up.backend.name != "native" or (os.cpu_count() or 1) < 2:
                continue
            twin = type(up.backend)(up.weights, up.device, up.backend.precision, threads=1)
            runners[name] = twin.run
        return runners

    def _on_batch(self, record) -> None:
        self.metrics.record_batch(record)
        self.queue.record(record.pixels, record.seconds)

    def warm_up(self) -> None:
        """One tiny image through every model and lane (which builds the engines' plans); then ready."""
        import numpy as np

        tile = np.zeros((1, 16, 16, 3), np.uint8)
        for lane in self._lanes:
            for runner in lane.runners.values():
                runner(tile)
        self.ready = True

    def model_info(self) -> list[dict]:
        info = []
        for name, up in self.upscalers.items():
            backend = type(up.backend)
            info.append({"name": name, "default": name == self.models[0],
                         "architecture": up.weights.network.architecture,
                         "description": up.weights.describe(), "scale": up.scale, "backend": up.backend.name,
                         "device": up.device, "precision": up.backend.precision,
                         "precisions": list(backend.supported_precisions(up.device))})
        return info

    def process(self, body: bytes, options: RequestOptions, job: Job) -> tuple[bytes, str]:
        """Body -> (answer bytes, content type); refusals raise ``Refusal``. Runs in a worker thread."""
        try:
            source = decode_image(body, self.limits.max_pixels, "request body")
        except ImageTooLarge as exc:
            raise Refusal(413, str(exc)) from None
        except ImageFileError as exc:
            raise Refusal(400, f"{exc}; accepted: PNG (8/16-bit), JPEG, WebP, TIFF, BMP, GIF and the other "
                               "formats Pillow reads") from None
        up = self.upscalers[options.model]
        frames = source.frames
        fmt = options.format or (source.format if source.format in CONTENT_TYPES else "PNG")
        if source.animated and fmt not in ANIMATED_FORMATS:
            raise Refusal(400, f"the input has {len(frames)} frames and {fmt} holds one: ask for format=png "
                               "(APNG) or format=webp")
        try:
            output_hw = up.output_hw(frames[0].shape[:2], options.output_size)
        except InputError as exc:
            raise Refusal(400, str(exc)) from None
        self.limits.check_output(output_hw, len(frames))
        cost = frames[0].shape[0] * frames[0].shape[1] * len(frames) * (8 if options.tta else 1)
        self.queue.admit(cost)
        self.metrics.queue_pixels.set(self.queue.queued)
        try:  # released once answered: until then the request holds its output
            run = functools.partial(job.run, options.model)
            size = options.output_size
            try:
                upscaled = [up.upscale(frame, outscale=size.outscale, width=size.width, height=size.height,
                                       tta=options.tta, run_windows=run) for frame in frames]
            except InputError as exc:
                raise Refusal(400, str(exc)) from None
            try:
                data, _ = encode_image(source.with_frames(upscaled), fmt, quality=options.quality,
                                       png_compress_level=PNG_COMPRESS_LEVEL, name=f"the {fmt} answer")
            except ImageFileError as exc:  # what the input asks of the format (its size, its frames), not a bug
                raise Refusal(400, f"{exc}; received {_frames(source.format, frames)}, upscaled to "
                                   f"{_sizes(upscaled)}; accepted: another format= (png, jpeg or webp) or a "
                                   "smaller outscale, width or height") from None
        finally:
            self.queue.release(cost)
            self.metrics.queue_pixels.set(self.queue.queued)
        return data, CONTENT_TYPES[fmt]

    def close(self) -> None:
        self.scheduler.close()
