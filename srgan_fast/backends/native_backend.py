"""Backend "native": the C++ engine of srgan_fast._C on CPU (csrc/), fp32, bf16 or int8. Needs no torch.

The engine packs the weights once (Winograd-domain 3x3 convs, fused epilogues, I/O conversion inside the
first and last kernels) and reuses its feature maps while the tile size repeats, so the tiler should keep
tiles one size. See docs/native.md.

Upscalers of the same weights and engine options share one engine (``_shared_engine``): its packed weights
and the feature maps it has already touched, so a second Upscaler of a model runs at the first one's steady
speed from its first call. The engine runs one batch at a time on every core, so sharing costs no throughput,
and its results do not depend on who called it before.

After ``os.fork()`` the engine is rebuilt in the child from its weights and runs on a thread born there
(srgan_fast.backends.fork_safety says why), so a child or a fork ``multiprocessing.Pool`` gets the parent's results.
"""
from __future__ import annotations

import functools
import logging
import weakref
from pathlib import Path
from typing import Callable

import numpy as np

from srgan_fast.architecture import IMAGE, Conv, Network
from srgan_fast.backends import fork_safety
from srgan_fast.backends.base import Backend, BackendUnavailable, engine_layers, register_backend
from srgan_fast.options import parse_cpu_path, parse_threads
from srgan_fast.weights import GeneratorWeights

log = logging.getLogger(__name__)

# Written by setup.py when the native build was skipped or failed: the reason, for `srgan-fast info`.
_BUILD_STATUS = Path(__file__).resolve().parent.parent / "_native_build_status.txt"


def _native_module():
    from srgan_fast import _C

    return _C


def _shadowed_install() -> Path | None:
    """The installed package's folder, where it has a built engine and this process imported another copy: a
    source tree that Python found first (the current folder comes first on its path)."""
    import importlib.metadata

    here = Path(__file__).resolve().parent.parent
    try:
        installed = Path(importlib.metadata.distribution("srgan_fast").locate_file("srgan_fast")).resolve()
    except (importlib.metadata.PackageNotFoundError, TypeError, OSError):
        return None
    if installed == here or not any(installed.glob("_C*")):
        return None
    return installed


@functools.lru_cache(maxsize=1)
def _probe() -> str | None:
    """None when srgan_fast._C imports, else why not (cached: the answer cannot change in a process)."""
    try:
        _native_module()
    except ImportError as exc:
        installed = _shadowed_install()
        if installed is not None:
            return (f"srgan_fast was imported from {Path(__file__).resolve().parent.parent}, a source tree without the "
                    f"built engine, instead of the installed package in {installed}: run from another folder, or "
                    "build it in place with pip install -e .")
        if _BUILD_STATUS.is_file():
            return f"srgan_fast._C is not built: {_BUILD_STATUS.read_text().strip()}"
        return f"srgan_fast._C is not built or does not load ({exc}); reinstall with pip install -v ."
    return None


def build_info() -> dict | None:
    """How the extension was built and what this CPU runs (for `srgan-fast info`), or None without it."""
    if _probe() is not None:
        return None
    _C = _native_module()
    return {**_C.build_info(), "cpu": _C.cpu_info()}


class _EngineHandle:
    """One engine for every backend with the same weights and options; rebuilt on first use in a forked child:
    the parent's may hold its lock for a run that was in flight in another thread at the fork, and that thread
    does not exist here."""

    def __init__(self, build: Callable[[], object]):
        self._build = build
        self._engine, self._generation = build(), fork_safety.generation()

    @property
    def engine(self):
        if self._generation != fork_safety.generation():
            with fork_safety.lock():
                if self._generation != fork_safety.generation():
                    self._engine, self._generation = self._build(), fork_safety.generation()
        return self._engine


# Alive while some backend holds the handle: a model nobody uses any more frees its engine and feature maps.
_handles: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def _shared_engine(weights: GeneratorWeights, options: dict) -> _EngineHandle:
    """The engine of these weights with these options, built once per process (and once again per fork)."""
    digest = weights.metadata.get("tensors_sha256")
    key = (digest, repr(sorted(options.items())))
    with fork_safety.lock():
        handle = _handles.get(key) if digest is not None else None
        if handle is None:
            handle = _EngineHandle(functools.partial(_build_engine, weights, options))
            if digest is not None:
                _handles[key] = handle
        return handle


def _unsupported(conv: Conv, engine: str) -> str | None:
    """What of a layer the ``engine``'s layer records (``base.engine_layers``) cannot carry or its ops cannot run
    yet: the native engine runs ESRGAN's dense inputs, upsampled inputs and scaled residuals, and the image
    read pixel-unshuffled (it unshuffles it before the engine); the CUDA engine runs none of them."""
    if conv.unshuffle > 1 and (engine != "native" or conv.inputs != (IMAGE,)):
        return f"it reads its input pixel-unshuffled by {conv.unshuffle}"
    if engine == "native":
        return None
    if len(conv.inputs) > 1:
        return f"it reads the concatenation of {len(conv.inputs)} outputs (a dense connection)"
    if conv.upsample > 1:
        return f"it reads its input upsampled x{conv.upsample} (nearest)"
    if conv.residual_scale != 1.0 or conv.outer_residual is not None:
        return "it scales its residual or adds a second one (a residual-in-residual)"
    return None


def engine_refusal(network: Network, engine: str) -> str | None:
    """Why the ``engine`` ("native", "CUDA") engine cannot run ``network``, on one line naming the first layer
    it cannot run; None when it can (as far as Python knows: the native engine may still refuse by layer)."""
    for index, conv in enumerate(network.layers):
        why = _unsupported(conv, engine)
        if why is not None:
            return f"{network.architecture}: the {engine} engine cannot run layer {index} {conv.name!r}: {why}"
    return None


def unshuffled(tiles: np.ndarray, factor: int) -> np.ndarray:
    """[N, h, w, C] -> [N, h'/f, w'/f, C·f²] (torch's pixel_unshuffle channel order, c·f² + i·f + j), h' and w' the
    sides padded to multiples of f as ``reference.ops.pad_to_multiple`` pads them (the mirror of the last but one
    row or column, the pixel itself on a 1-pixel side)."""
    for axis in (1, 2):
        size = tiles.shape[axis]
        if size % factor:
            tiles = np.concatenate([tiles, tiles.take([max(size - 2, 0)], axis=axis)], axis=axis)
    n, h, w, c = tiles.shape
    blocks = tiles.reshape(n, h // factor, factor, w // factor, factor, c).transpose(0, 1, 3, 5, 2, 4)
    return np.ascontiguousarray(blocks.reshape(n, h // factor, w // factor, c * factor * factor))


def _build_engine(weights: GeneratorWeights, options: dict):
    network = weights.network
    factor = network.input_multiple
    try:
        return _native_module().Engine(engine_layers(weights, factor), network.scale * factor,
                                       network.image_skip or "none", image_channels=3 * factor * factor, **options)
    except ValueError as exc:
        if "cannot run layer" in str(exc):
            raise BackendUnavailable(f"{network.architecture}: {exc}") from None
        raise


@register_backend
class NativeBackend(Backend):
    name = "native"
    auto_priority = {"cpu": 20}

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return _probe()

    @classmethod
    def supported_precisions(cls, device: str) -> tuple[str, ...]:
        if device != "cpu" or _probe() is not None:
            return ()
        cpu = _native_module().cpu_info()
        return ("fp32",) + (("bf16",) if cpu["paths_bf16"] else ()) + (("int8",) if cpu["paths_int8"] else ())

    @classmethod
    def default_precision(cls, device: str, supported: tuple[str, ...], options: dict) -> str:
        # bf16 where the AMX tiles run it: on the validation split (18 crops of 256², the real tiles of a Xeon) it
        # scored -0.0002 dB (srresnet) and -0.0007 dB (srgan) PSNR-Y against fp32, within the 0.02 dB the default
        # may cost (benchmarks/results/bf16-amx-quality-valsplit-crops-xeon-amx.json). On vector units it
        # stays fp32: AVX512_BF16 was slower than fp32 on a Xeon with AMX, faster only on a Zen 4. A path the
        # user forces decides: the amx paths run no fp32, the vector paths take fp32 even on an AMX CPU.
        path = parse_cpu_path(options.get("path", "auto"))
        on_tiles = path in ("amx", "amx_emulated") or (path == "auto" and _native_module().cpu_info()["amx_bf16"])
        return "bf16" if "bf16" in supported and on_tiles else "fp32"

    @classmethod
    def precisions_with(cls, device: str, options: dict) -> tuple[str, ...]:
        supported = cls.supported_precisions(device)
        if options.get("path") != "amx_emulated" or not supported:
            return supported
        emulated = _native_module().cpu_info()["paths_emulated"]
        return tuple(p for p in ("bf16", "int8") if "amx_emulated" in emulated[p])

    def __init__(self, weights: GeneratorWeights, device: str = "cpu", precision: str = "fp32", *,
                 threads: int = 0, path: str = "auto", calibration_images: str | None = None):
        """threads: 0 = every core; path: 'auto', or force 'amx' | 'avx512' | 'avx2' | 'scalar' | 'reference' (or
        'amx_emulated': the amx kernels on the tiles' software model, for tests);
        calibration_images (int8): a folder of sample images to calibrate from (see native_int8.table_for)."""
        reason = self.unavailable_reason() or engine_refusal(weights.network, "native")
        if reason:
            raise BackendUnavailable(reason)
        if device != "cpu":
            raise ValueError(f"the native backend runs on 'cpu', got device {device!r} (use backend 'cuda')")
        supported = self.precisions_with(device, {"path": path})
        if precision not in supported:
            raise ValueError(f"the native backend on this CPU supports precision {' or '.join(supported)}, "
                             f"got {precision!r}")
        if calibration_images is not None and precision != "int8":
            raise ValueError(f"calibration_images is for precision 'int8', got precision {precision!r}")
        super().__init__(weights, device, precision)
        self._engine_options = {"precision": precision, "threads": parse_threads(threads), "path": parse_cpu_path(path)}
        if precision == "int8":  # the table is read (or made) once; a rebuilt engine reuses its codes
            from srgan_fast.backends import native_int8

            table = native_int8.table_for(weights, calibration_images)
            self._engine_options.update(native_int8.engine_options(weights, table, path))
        self._handle = _shared_engine(weights, self._engine_options)
        if self.engine.path_note:  # the AMX self-check failed on this machine: say so, once per engine
            log.warning("srgan_fast: %s", self.engine.path_note)

    @property
    def engine(self):
        return self._handle.engine

    def run(self, tiles: np.ndarray) -> np.ndarray:
        factor = self.weights.network.input_multiple
        if factor == 1:
            return fork_safety.run_in_child(self.engine.run, tiles)
        scale, (h, w) = self.weights.network.scale, tiles.shape[1:3]
        out = fork_safety.run_in_child(self.engine.run, unshuffled(tiles, factor))
        return np.ascontiguousarray(out[:, :scale * h, :scale * w]) if out.shape[1:3] != (scale * h, scale * w) else out

    def window_bytes(self, height: int, width: int) -> int:
        # The engine's planned maps and scratch at this very size (a 64x64 tile needs 6.2 KB per pixel, a 512x512
        # one 2.3 KB: halos and per-thread scratch are fixed costs), plus the float32 output at most.
        factor, scale = self.weights.network.input_multiple, self.weights.network.scale
        workspace = self.engine.workspace_bytes(1, -(-height // factor), -(-width // factor))
        return workspace + scale * scale * height * width * 3 * 4

    def seam_tiles(self) -> tuple[int, ...] | None:
        # Every precision's windows follow the engine's tiles, for the untiled bits. At bf16 and int8, where maps
        # are rounded, a tile's last-bit difference becomes whole levels at a seam; at fp32 one level in about 1
        # of 10^4 values. fp32's F(4x4) trunk widens srresnet's margins from 40 to 144 pixels, which costs nothing
        # up to 1080p under the default budget (one window since the banded chain) and 1.2x the work at 4K.
        return tuple(self.engine.seam_tiles)

    def saturating_batch_pixels(self) -> int:
        # Every core is busy from one 256² tile on (the kernels split rows); images/s by batch, 2-core Zen 3:
        # 64² 15.0 (1), 16.6 (2), 15.6 (16); 128² 3.9 (1), 4.3 (8); 256² 1.12 (1), 1.18 (2), 0.89 (16, its
        # 4 GB of maps): two 256² tiles' worth and no more.
        return 2 * 256 * 256

    def describe(self) -> str:
        precision = self.precision
        if precision == "int8":  # the convs the int8 policy leaves in floating point run at the float precision,
            # and so do those the path cannot run on codes (a dense block's convs where no fused op runs them)
            precision = (f"int8 in {self.engine.int8_layers} of {len(self.weights.network.layers)} convs, the "
                         f"others {self.engine.float_precision}")
        return f"native (cpu, {precision}, {self.engine.path}, {self.engine.threads} threads)"
