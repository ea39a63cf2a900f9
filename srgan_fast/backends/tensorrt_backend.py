"""Backend "tensorrt": TensorRT engines built from the exported graph, cached on disk, run with CUDA graphs.

One static engine per tile shape (and ``engine_batch``), built on first use and then loaded from the engine cache
(srgan_fast.backends.tensorrt.cache) in later processes; ``dynamic=((min_h, min_w), (max_h, max_w))`` builds one engine
for a range of tile shapes instead. uint8 tiles use an engine with the uint8 NHWC conversions inside; uint16
and float32 tiles use the float engine, converted on the host. Device inputs (torch CUDA tensors or DLPack
arrays, NHWC) stay on the GPU and come back as torch CUDA tensors.

Not run yet on any GPU (see docs/tensorrt.md): the code follows TensorRT's documented Python API.
"""
from __future__ import annotations

import importlib.util
import threading

import numpy as np

from srgan_fast.backends.base import (
    Backend,
    BackendUnavailable,
    register_backend,
    tiles_to_unit_nchw,
    unit_nchw_to_tiles,
)
from srgan_fast.options import parse_device
from srgan_fast.weights import GeneratorWeights


@register_backend
class TensorRTBackend(Backend):
    name = "tensorrt"
    auto_priority = {"cuda": 40}

    @classmethod
    def unavailable_reason(cls) -> str | None:
        if importlib.util.find_spec("tensorrt") is None:
            return "TensorRT is not installed (pip install 'srgan_fast[tensorrt]')"
        missing = [m for m in ("torch", "onnx") if importlib.util.find_spec(m) is None]
        if missing:
            return f"the tensorrt backend also needs {' and '.join(missing)} (pip install 'srgan_fast[tensorrt]')"
        import torch

        if not torch.cuda.is_available():
            return "no CUDA GPU visible to torch"
        return None

    @classmethod
    def supported_precisions(cls, device: str) -> tuple[str, ...]:
        from srgan_fast.options import PRECISIONS  # TensorRT builds every one

        return PRECISIONS if device.startswith("cuda") else ()

    def __init__(self, weights: GeneratorWeights, device: str, precision: str, *, engine_batch: int = 8,
                 dynamic: tuple[tuple[int, int], tuple[int, int]] | None = None, optimization_level: int = 3,
                 workspace_mib: int | None = None, calibration_images: str | None = None,
                 cache_dir: str | None = None, use_cuda_graph: bool = True):
        """engine_batch: tiles per engine launch (a static engine's batch; Upscaler's batch_size, the tiles per
        ``run`` call, is split into launches of this size); dynamic: see the module docstring;
        calibration_images: folder of sample images, required for int8/fp8; cache_dir: engine cache location."""
        reason = self.unavailable_reason()
        if reason:
            raise BackendUnavailable(reason)
        if not device.startswith("cuda"):
            raise ValueError(f"the tensorrt backend runs on 'cuda' or 'cuda:N', got device {device!r}")
        from srgan_fast.backends.tensorrt.builder import cuda_device_info
        from srgan_fast.backends.tensorrt.cache import EngineCache
        from srgan_fast.backends.tensorrt.options import BuildOptions, check_device_supports

        super().__init__(weights, device, precision)
        self.device_index = parse_device(device).gpu_index
        self.engine_batch, self.dynamic = engine_batch, dynamic
        self.calibration_images, self.use_cuda_graph = calibration_images, use_cuda_graph
        self._option_args = {"precision": precision, "batch": engine_batch, "optimization_level": optimization_level,
                             "workspace_mib": workspace_mib}
        # Reject what cannot work now, not at the first tile (whose engine build may take minutes).
        options = BuildOptions(dynamic=None, **self._option_args)
        check_device_supports(precision, cuda_device_info(self.device_index))
        if options.quantized and calibration_images is None:
            raise ValueError(f"tensorrt {precision} needs calibration_images: a folder of sample images")
        self.cache = EngineCache(cache_dir)
        self._runners: dict[tuple, object] = {}
        self._runners_lock = threading.Lock()  # one engine build per shape, however many threads ask for it

    def _runner(self, io: str, height: int, width: int):
        key = (io,) if self.dynamic else (io, height, width)
        with self._runners_lock:
            if key not in self._runners:
                self._runners[key] = self._new_runner(io, height, width)
            return self._runners[key]

    def _new_runner(self, io: str, height: int, width: int):
        from srgan_fast.backends.tensorrt.builder import engine_for
        from srgan_fast.backends.tensorrt.options import BuildOptions
        from srgan_fast.backends.tensorrt.runtime import EngineLoadError, EngineRunner

        options = BuildOptions(tile=(height, width), io=io, dynamic=self.dynamic, **self._option_args)
        build = {"device_index": self.device_index, "cache": self.cache,
                 "calibration_images": self.calibration_images}
        engine, cache_key = engine_for(self.weights, options, **build)
        try:
            runner = EngineRunner(engine, self.device_index, self.use_cuda_graph)
        except EngineLoadError as exc:
            # A cached engine TensorRT will not load (e.g. a driver update): report, drop it, build once more.
            self.cache.discard(cache_key, str(exc))
            engine, _ = engine_for(self.weights, options, **build)
            runner = EngineRunner(engine, self.device_index, self.use_cuda_graph)
        return runner

    def _launch_batches(self, x: np.ndarray) -> list[np.ndarray]:
        """Split [N, ...] into engine batches, the last zero-padded to the static batch size."""
        batches = []
        for start in range(0, len(x), self.engine_batch):
            chunk = x[start:start + self.engine_batch]
            if len(chunk) < self.engine_batch and self.dynamic is None:
                chunk = np.concatenate([chunk, np.zeros((self.engine_batch - len(chunk),) + chunk.shape[1:], x.dtype)])
            batches.append(np.ascontiguousarray(chunk))
        return batches

    def _run_engine(self, io: str, x: np.ndarray, height: int, width: int) -> np.ndarray:
        runner = self._runner(io, height, width)
        return np.concatenate(runner.run_host(self._launch_batches(x)))[:len(x)]

    def run(self, tiles):
        """[N, h, w, 3] uint8/uint16/float32 NHWC -> [N, 4h, 4w, 3] same dtype; a CUDA tensor -> a CUDA tensor."""
        if not isinstance(tiles, np.ndarray):
            return self._run_device(tiles)
        if tiles.ndim != 4 or tiles.shape[-1] != 3:
            raise ValueError(f"expected tiles of shape [N, h, w, 3], got shape {tiles.shape}")
        _, h, w, _ = tiles.shape
        if tiles.dtype == np.uint8:
            return self._run_engine("uint8", tiles, h, w)
        return unit_nchw_to_tiles(self._run_engine("float", tiles_to_unit_nchw(tiles), h, w), tiles.dtype)

    def _run_device(self, tiles):
        """NHWC uint8 or float32 CUDA tensor (or DLPack array) -> torch CUDA tensor, never leaving the GPU."""
        import torch

        x = tiles if isinstance(tiles, torch.Tensor) else torch.from_dlpack(tiles)
        if x.ndim != 4 or x.shape[-1] != 3 or x.dtype not in (torch.uint8, torch.float32):
            raise ValueError(f"expected a [N, h, w, 3] uint8 or float32 CUDA tensor, got {tuple(x.shape)} {x.dtype}")
        _, h, w, _ = x.shape
        io = "uint8" if x.dtype == torch.uint8 else "float"
        runner = self._runner(io, h, w)
        source = x if io == "uint8" else x.permute(0, 3, 1, 2)
        outputs = []
        for start in range(0, len(x), self.engine_batch):
            chunk = source[start:start + self.engine_batch].contiguous()
            count = len(chunk)
            if count < self.engine_batch and self.dynamic is None:
                chunk = torch.cat([chunk, chunk.new_zeros((self.engine_batch - count,) + tuple(chunk.shape[1:]))])
            outputs.append(runner.run_device(chunk)[:count])
        y = torch.cat(outputs)
        return y if io == "uint8" else y.clamp_(0.0, 1.0).permute(0, 2, 3, 1).contiguous()

    def bytes_per_input_pixel(self) -> int:
        # As torch: the description's peak live set of feature maps, in the engine's float type.
        element = 4 if self.precision == "fp32" else 2
        return int(self.weights.network.peak_activation_values_per_input_pixel() * element) + 64

    def describe(self) -> str:
        shape = "dynamic shapes" if self.dynamic else "static shapes"
        return f"tensorrt ({self.device}, {self.precision}, batch {self.engine_batch}, {shape})"
