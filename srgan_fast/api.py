"""The public API: ``upscale(image)`` and the reusable ``Upscaler`` for loops over files and frames."""
from __future__ import annotations

import glob
import importlib.util
import logging
import os
import sys
import threading
from typing import Callable, Iterable, Iterator

import numpy as np
from PIL import Image

from srgan_fast.tiler import channels
from srgan_fast.backends import Backend, BackendUnavailable, get_backend_class, ranked_backends
from srgan_fast.tiler.channels import InputError
from srgan_fast.tiler.ensemble import self_ensemble
from srgan_fast.options import (format_bytes, parse_bytes, parse_device, parse_positive_int, parse_precision,
                                parse_tile)
from srgan_fast.tiler.output_size import (RESIZE_BYTES_PER_SOURCE_PIXEL, RESIZE_BYTES_PER_TARGET_PIXEL, OutputSize,
                                          resize)
from srgan_fast.tiler.plan import TilePlan, auto_tile, plan_tiles
from srgan_fast.tiler.seams import seam_geometry
from srgan_fast.weights import DEFAULT_MODEL, GeneratorWeights, load_weights

log = logging.getLogger("srgan_fast")
# A plan computing more than this multiple of the image's pixels (a deep network's margins under a small memory
# budget: RRDBNet's 349 px around each window) is worth a warning that says what budget avoids it.
COSTLY_PLAN_OVERHEAD = 2.0

# Working memory the tiler lets a backend use at once, by device kind (bytes).
DEFAULT_MEMORY_BUDGET = {"cpu": 3 << 30, "cuda": 4 << 30}


def gpu_present() -> bool:
    """Whether an NVIDIA GPU is usable: through the native CUDA backend or torch, whichever is installed."""
    try:
        if get_backend_class("cuda").unavailable_reason() is None:
            return True
    except ValueError:
        pass
    if sys.platform.startswith("linux") and not glob.glob("/dev/nvidia[0-9]*"):
        return False  # no NVIDIA device node: skip importing torch just to be told so
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


def available_memory() -> int | None:
    """Bytes of memory this process could still get (MemAvailable on Linux, else physical memory), or None."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return None


class Upscaler:
    """A loaded model on a backend, ready for many images: ``Upscaler()(image)`` is ``upscale(image)``.

    Thread safety: one Upscaler may be called from any number of threads at once, and each call returns
    exactly (bit for bit) what it returns when called alone. Gathering tiles, scattering results, gray,
    alpha and dtype conversions run in parallel in the calling threads; the backend's own compute is
    serialised where the backend requires it (the native and CUDA engines run one batch at a time, each
    batch using every core or the whole GPU; a TensorRT execution context runs one launch at a time).

    model: a shipped model name ("srgan", "srresnet"), a path to weights (ours, or another project's .pth or
        .safetensors: the architecture is detected from the tensors), or GeneratorWeights.
    backend: "auto" (the fastest available for the device, reported in ``describe()``) or a registered name.
    device: "cpu", "cuda" or "cuda:N"; None picks a GPU when there is one.
    precision: "fp32", "fp16", "bf16", "int8" (native, TensorRT) or "fp8" (TensorRT), as the backend supports;
        None: fp16 on GPUs; on CPUs bf16 where the native engine runs it on AMX tiles, fp32 elsewhere
        (``describe()`` says which).
    tile: core size in input pixels of each tile (int or (h, w)); None sizes tiles from ``memory_budget``.
    batch_size: tiles per backend call; None fills ``memory_budget``, up to the batch past which the backend runs
        no faster (``Backend.saturating_batch_pixels``).
    memory_budget: bytes of working memory the tiler lets the backend use per call, an int or a size such as
        "2G" (default 3 GiB on CPUs, 4 GiB on GPUs); lower it when a call runs out of memory.
    tta: self-ensemble, the mean of the 8 flipped and rotated runs (8× the time; see srgan_fast.tiler.ensemble).
    outscale / size / width / height: the default output size of every call (see ``upscale``).
    backend_options: passed to the backend (e.g. channels_last=False for torch, threads=N for native).
    """

    def __init__(self, model: str | GeneratorWeights = DEFAULT_MODEL, *, backend: str = "auto",
                 device: str | None = None, precision: str | None = None, tile: int | tuple[int, int] | None = None,
                 batch_size: int | None = None, memory_budget: int | None = None, tta: bool = False,
                 outscale: float | None = None, size: tuple[int, int] | None = None, width: int | None = None,
                 height: int | None = None, **backend_options):
        # The options first: a mistake in one is told before any model is loaded or engine built.
        self.tile = parse_tile(tile)
        precision = None if precision is None else parse_precision(precision)
        if memory_budget is not None:
            try:
                memory_budget = parse_bytes(memory_budget)
            except ValueError:
                raise ValueError(f"memory_budget must be a positive number of bytes, got {memory_budget!r} (an int, "
                                 "NumPy's too, or a size such as '2G' or '512M')") from None
        self.batch_size = None if batch_size is None else parse_positive_int(batch_size, "batch_size")
        self.output_size = OutputSize(outscale, size, width, height)
        self.tta = bool(tta)
        self.weights = model if isinstance(model, GeneratorWeights) else load_weights(model)
        parsed_device = parse_device("cuda" if device is None and gpu_present() else device or "cpu")
        self.device = device = str(parsed_device)
        device_kind = parsed_device.kind
        candidates = ranked_backends(device_kind) if backend == "auto" else [backend]
        self.backend = self._first_working_backend(candidates, device, precision, backend_options)
        self.backend_name = self.backend.name
        if backend == "auto":
            log.info("srgan_fast: auto picked backend %s", self.backend.describe())
        self.scale = self.weights.network.scale
        # Window margins and grid: the receptive radius, widened and aligned to the output tiles the backend's
        # kernels compute as one, so that tiled results are the untiled bits (tiler/seams.py).
        self.seams = seam_geometry(self.weights.network, self.backend.seam_tiles())
        self.memory_budget = memory_budget or DEFAULT_MEMORY_BUDGET[device_kind]
        self._plans: dict[tuple[int, int], TilePlan] = {}
        self._plans_lock = threading.Lock()
        # Gather buffers are per thread: the engine reads a batch with the GIL released, so a buffer shared
        # between threads would be refilled under it by another call.
        self._thread_state = threading.local()

    def _first_working_backend(self, candidates: list[str], device: str, precision: str | None,
                               options: dict) -> Backend:
        """Construct the first candidate that works; ``auto`` falls back past a backend that refuses at start
        (e.g. a GPU engine whose self-check failed), a named backend reports why it cannot run."""
        refusals = []
        for name in candidates:
            backend_class = get_backend_class(name)
            reason = backend_class.unavailable_reason()
            if reason is not None:
                raise BackendUnavailable(f"backend {name!r} is not available: {reason}")
            supported = backend_class.precisions_with(device, options)
            chosen = precision or backend_class.default_precision(device, supported, options)
            if chosen not in supported:
                if len(candidates) > 1:
                    refusals.append(f"{name}: no {chosen}")
                    continue
                raise ValueError(f"backend {name!r} on {device} supports precision {', '.join(supported)}; "
                                 f"got {chosen!r}")
            try:
                return backend_class(self.weights, device, chosen, **options)
            except BackendUnavailable as exc:
                if len(candidates) == 1:
                    raise
                log.warning("srgan_fast: backend %s refused to start (%s); trying the next", name, exc)
                refusals.append(f"{name}: {exc}")
        raise BackendUnavailable(f"no backend could start on {device}: " + "; ".join(refusals))

    def describe(self) -> str:
        return (f"model {self.weights.name} ({self.weights.describe()}) on {self.backend.describe()}"
                + (", self-ensemble x8" if self.tta else ""))

    def __call__(self, image, **output_size):
        return self.upscale(image, **output_size)

    def output_hw(self, input_hw: tuple[int, int], output_size: OutputSize | None = None) -> tuple[int, int]:
        """The (height, width) that an input of ``input_hw`` comes out at."""
        target = (output_size or self.output_size).target(input_hw, self.scale)
        return target or (self.scale * input_hw[0], self.scale * input_hw[1])

    def plan(self, image_hw: tuple[int, int]) -> TilePlan:
        """The tiling used for images of this size (made once per size)."""
        with self._plans_lock:
            if image_hw not in self._plans:
                tile = self.tile or auto_tile(image_hw, self.seams, self.backend.window_bytes, self.memory_budget)
                plan = self._plans[image_hw] = plan_tiles(image_hw, tile, self.seams)
                if self.tile is None:
                    self._warn_about_costly(image_hw, plan)
            return self._plans[image_hw]

    def _warn_about_costly(self, image_hw: tuple[int, int], plan: TilePlan) -> None:
        """One warning where the memory budget makes a plan compute many times the image's pixels, or where no
        window within it can hold a core between seam-free margins (RRDBNet's are hundreds of pixels)."""
        margin = max(self.seams.before, *self.seams.after_by_residue)
        what = f"srgan_fast: {self.weights.network.architecture} at {image_hw[0]}x{image_hw[1]}"
        budget = format_bytes(self.memory_budget)
        window = self.backend.window_bytes(*plan.window_hw)
        if window > self.memory_budget:
            log.warning("%s needs %s per window, over memory_budget %s: seam-free windows need %d-pixel margins, "
                        "so no smaller window holds a core", what, format_bytes(window), budget, margin)
        elif plan.overhead > COSTLY_PLAN_OVERHEAD:
            log.warning("%s is planned as %d windows computing %.1fx its pixels within memory_budget %s (seam-free "
                        "windows need %d-pixel margins); one window needs %s: a memory_budget that large runs it in "
                        "one", what, plan.num_windows, plan.overhead, budget, margin,
                        format_bytes(self.backend.window_bytes(*image_hw)))

    def upscale(self, image, *, outscale: float | None = None, size: tuple[int, int] | None = None,
                width: int | None = None, height: int | None = None, tta: bool | None = None,
                run_windows: Callable[[np.ndarray, int], np.ndarray] | None = None):
        """H×W[×C] uint8/uint16/float32 array or PIL image -> the upscaled image of the same type: an array of the
        same dtype (in native byte order) and layout, a PIL image in the mode it went through the model in
        (``channels.from_pil``: 1 comes back as L, P as RGB, CMYK as RGB, ...).

        The output is ×scale (the model's), or: ``outscale`` × the input, exactly ``size`` = (height, width), or
        ``width`` / ``height`` with the aspect ratio kept; the network runs at its own scale and its result is
        resized (Lanczos, see srgan_fast.tiler.output_size). Smaller than the input is refused with ``InputError``.

        tta: self-ensemble for this call (None: the Upscaler's own setting).
        run_windows: the hook through which srgan_fast.serve batches windows of many requests into one backend
            call: ``run_windows(windows [N, h, w, 3], max_batch) -> [N, sh, sw, 3]`` replaces each
            ``backend.run`` of this call (max_batch: the most windows the memory budget lets one call take). It
            must return what the backend returns for those windows; the result is then unchanged.
        """
        requested = OutputSize(outscale, size, width, height)
        output_size = self.output_size if requested.native else requested
        network = _NetworkCall(self, self.tta if tta is None else bool(tta), run_windows)
        if isinstance(image, Image.Image):
            array, mode = channels.from_pil(image)
            frames = channels.validate_array(array)[None]
            result = channels.to_pil(self._upscale_frames(frames, output_size, network)[0], mode)
            channels.copy_pil_metadata(image, result)
            return result
        array = channels.validate_array(image)
        out = self._upscale_frames(array[None], output_size, network)[0]
        return out.reshape(out.shape[:2] + image.shape[2:])

    def upscale_batch(self, frames: np.ndarray) -> np.ndarray:
        """[N, H, W, C] equal-size frames (C in 1, 3, 4) -> [N, sH, sW, C]: tiles of all frames share batches."""
        if not isinstance(frames, np.ndarray) or frames.ndim != 4:
            raise InputError(f"expected an N×H×W×C array of frames, got "
                             f"{getattr(frames, 'shape', type(frames).__name__)}")
        if frames.shape[0] == 0:
            raise InputError(f"expected at least one frame, got shape {frames.shape}")
        frames = channels.native_byte_order(frames)
        for frame in frames:
            channels.validate_array(frame)
        return self._upscale_frames(frames, self.output_size, _NetworkCall(self, self.tta, None))

    def _upscale_frames(self, frames: np.ndarray, output_size: OutputSize, network: _NetworkCall) -> np.ndarray:
        """Validated [N, H, W, C] -> [N, H', W', C] at ``output_size``; memory errors say what to lower."""
        target = output_size.target(frames.shape[1:3], self.scale,
                                    lambda target: self._check_output_fits(frames.shape, frames.dtype, target,
                                                                           output_size))
        try:
            upscaled = self._upscale_channels(frames, network)
            if target is None:
                return upscaled
            resized = np.empty((len(upscaled), *target, upscaled.shape[3]), upscaled.dtype)
            for frame, out in zip(upscaled, resized):
                resize(frame, out)
            return resized
        except MemoryError:
            _, h, w, c = frames.shape
            output = format_bytes(self._output_bytes(frames.shape, frames.dtype, target))
            raise MemoryError(f"out of memory upscaling {h}×{w}×{c} {frames.dtype} (output {output}) with a memory "
                              f"budget of {format_bytes(self.memory_budget)}: lower it with memory_budget= "
                              "(--memory-budget) or pass a smaller tile") from None

    def _output_bytes(self, shape: tuple[int, ...], dtype: np.dtype, target: tuple[int, int] | None = None) -> float:
        """What a call holds beside the tiler's working set: the model's result and, when it is resized, the final
        output and the resize's float32 work. A float: an absurd target must not overflow."""
        n, h, w, c = shape
        itemsize = np.dtype(dtype).itemsize
        model_pixels = float(self.scale * h) * (self.scale * w)
        if target is None:
            return n * model_pixels * c * itemsize
        target_pixels = float(target[0]) * target[1]
        return (n * (model_pixels + target_pixels) * c * itemsize + RESIZE_BYTES_PER_SOURCE_PIXEL * model_pixels
                + RESIZE_BYTES_PER_TARGET_PIXEL * target_pixels)

    def _check_output_fits(self, shape: tuple[int, ...], dtype: np.dtype, target: tuple[int, int] | None,
                           output_size: OutputSize) -> None:
        """Refuse, before the network runs, an input whose outputs alone exceed the memory there is: the model's
        result, and the final size asked for where it is resized."""
        needed = self._output_bytes(shape, dtype, target)
        available = available_memory()
        if available is None or needed <= available:
            return
        n, h, w, c = shape
        what = f"{h}×{w}×{c} {np.dtype(dtype)}" + (f" frames ×{n}" if n > 1 else " image")
        model_needs = self._output_bytes(shape, dtype)
        if target is None or model_needs > available:
            raise InputError(f"the ×{self.scale} output of a {what} needs {format_bytes(model_needs)}, more than "
                             f"the {format_bytes(available)} of memory available; upscale it in parts")
        # The largest factor f whose output, f·h × f·w and its resize work, fits beside the model's result.
        spare = available - model_needs - RESIZE_BYTES_PER_SOURCE_PIXEL * float(self.scale * h) * (self.scale * w)
        per_pixel = n * c * np.dtype(dtype).itemsize + RESIZE_BYTES_PER_TARGET_PIXEL
        fits = (max(0.0, spare) / (h * w * per_pixel)) ** 0.5
        layout = {1: "gray", 3: "RGB", 4: "RGBA"}[c] + " input" + (f" ({n} frames)" if n > 1 else "")
        raise InputError(f"a {_pixels(target[1])}x{_pixels(target[0])} output ({output_size}) of a {w}x{h} "
                         f"{np.dtype(dtype)} {layout} needs {format_bytes(needed)}, more than the "
                         f"{format_bytes(available)} of memory available; at most about {int(w * fits)}x"
                         f"{int(h * fits)} fits (outscale {fits:.3g})")

    def _upscale_channels(self, frames: np.ndarray, network: _NetworkCall) -> np.ndarray:
        """Validated [N, H, W, C] -> [N, sH, sW, C]: gray and alpha around the RGB network."""
        count = frames.shape[3]
        if count == 1:
            return channels.rgb_to_gray(network.rgb(np.repeat(frames, 3, axis=3)))
        if count == 3:
            return network.rgb(frames)
        rgb = np.stack([channels.fill_transparent(f[..., :3], f[..., 3]) for f in frames])
        alpha = np.stack([channels.upscale_alpha(f[..., 3], self.scale) for f in frames])
        return np.concatenate([network.rgb(rgb), alpha[..., None]], axis=3)

    def _upscale_rgb(self, rgb: np.ndarray, run_windows: Callable[[np.ndarray, int], np.ndarray] | None = None
                     ) -> np.ndarray:
        """[N, H, W, 3] contiguous -> [N, sH, sW, 3]: windows gathered into batches, cores scattered into the output."""
        n, h, w, _ = rgb.shape
        plan = self.plan((h, w))
        wh, ww = plan.window_hw
        window_bytes = self.backend.window_bytes(wh, ww)
        batch = self.batch_size or max(1, min(self.memory_budget // window_bytes, 64))
        saturating = None if self.batch_size else self.backend.saturating_batch_pixels()
        if saturating:
            batch = min(batch, max(1, saturating // (wh * ww)))
        run = run_windows or (lambda windows, _: self.backend.run(windows))
        if plan.num_windows == 1 and n <= batch:
            return run(rgb, batch)  # the whole frames are the window: no gather, no scatter
        out = np.empty((n, self.scale * h, self.scale * w, 3), dtype=rgb.dtype)
        jobs = [(i, window) for i in range(n) for window in plan.windows(self.scale)]
        buffer = self._gather_buffer((min(batch, len(jobs)), wh, ww, 3), rgb.dtype)
        for start in range(0, len(jobs), batch):
            chunk = jobs[start : start + batch]
            for slot, (i, (window, _, _)) in enumerate(chunk):
                buffer[slot] = rgb[i][window]
            result = run(buffer[: len(chunk)], batch)
            for slot, (i, (_, in_window, in_image)) in enumerate(chunk):
                out[i][in_image] = result[slot][in_window]
        return out

    def _gather_buffer(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """This thread's gather buffer, kept while frames keep their size (a video reuses one for every frame)."""
        buffer = getattr(self._thread_state, "buffer", None)
        if buffer is None or buffer.shape != shape or buffer.dtype != dtype:
            buffer = self._thread_state.buffer = np.empty(shape, dtype=dtype)
        return buffer

    def stream(self, frames: Iterable[np.ndarray], batch_size: int | None = None) -> Iterator[np.ndarray]:
        """Frames in, ×4 frames out, in order; equal-size frames are batched (see srgan_fast.tiler.streaming).

        A failure (the source raising, a bad frame) comes after every result before it, as ``StreamError``
        naming the failing frame's index."""
        from srgan_fast.tiler.streaming import stream_frames

        return stream_frames(self, frames, batch_size=batch_size)


def _pixels(count: int) -> str:
    """A side in pixels; an absurd one (from outscale=1e300, say) in short."""
    return f"{count}" if count < 10**12 else f"{count:.3g}"


class _NetworkCall:
    """How one call runs the RGB network: with or without the self-ensemble, through the backend or a hook."""

    def __init__(self, upscaler: Upscaler, tta: bool, run_windows):
        self.upscaler, self.tta, self.run_windows = upscaler, tta, run_windows

    def rgb(self, rgb: np.ndarray) -> np.ndarray:
        """[N, H, W, 3] -> [N, sH, sW, 3] through the network, once or as the 8-way self-ensemble."""
        # The backends take C-contiguous tiles; stacking Fortran-ordered frames (say) keeps their order.
        rgb = np.ascontiguousarray(rgb)
        if self.tta:
            return self_ensemble(rgb, lambda frames: self.upscaler._upscale_rgb(frames, self.run_windows))
        return self.upscaler._upscale_rgb(rgb, self.run_windows)


_cached: tuple[tuple, Upscaler] | None = None
_cache_lock = threading.Lock()


def _new_cache_lock_in_child() -> None:
    global _cache_lock
    _cache_lock = threading.Lock()  # one held by another thread at a fork would stay held in the child


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_cache_lock_in_child)


def upscale(image, *, model: str = DEFAULT_MODEL, backend: str = "auto", device: str | None = None,
            precision: str | None = None, tile: int | tuple[int, int] | None = None, memory_budget: int | None = None,
            tta: bool = False, calibration_images: str | os.PathLike | None = None, outscale: float | None = None,
            size: tuple[int, int] | None = None, width: int | None = None, height: int | None = None):
    """Upscale one image (see ``Upscaler`` and ``Upscaler.upscale``); the loaded model is kept for the next call
    with the same options. ``calibration_images``: as the ``Upscaler``'s, for native int8 only.

    Safe from any number of threads: calls with the same options share one Upscaler; a call with other
    options replaces it for later calls, while calls already running finish on the one they took.
    """
    global _cached
    # Given to the backend only when set, as the command line does: the backends without int8 do not take it.
    backend_options = {} if calibration_images is None else {"calibration_images": calibration_images}
    key = (str(model), backend, device, precision, tile, memory_budget, tta, str(calibration_images))
    with _cache_lock:  # one model resident, not one per option set ever used
        if _cached is None or _cached[0] != key:
            _cached = (key, Upscaler(model, backend=backend, device=device, precision=precision, tile=tile,
                                     memory_budget=memory_budget, tta=tta, **backend_options))
        upscaler = _cached[1]
    return upscaler.upscale(image, outscale=outscale, size=size, width=width, height=height)
