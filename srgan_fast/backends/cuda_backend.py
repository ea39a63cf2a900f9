"""Backend "cuda": the native engine's own tensor-core kernels (csrc/ops/cuda, csrc/engine/cuda), fp16/bf16.

Host tiles (NumPy) go through pinned staging with copies overlapped with compute; device tiles (anything with
``__cuda_array_interface__`` or ``__dlpack__``, e.g. a torch CUDA tensor) are read and written on the GPU
without a round trip through the host. A torch or CuPy input gives a result of its own kind; a DLPack-only
input (e.g. a JAX array) is read through torch and comes back as a torch CUDA tensor.

Before a tile shape is used the engine compares its fast kernels with its fp32 reference kernels on a random
tile and refuses, with the measured errors in the message, if they disagree; construction runs that check
once so that ``auto`` can fall back to another backend.
"""
from __future__ import annotations

import ctypes
import functools
import re
import sys

import numpy as np

from srgan_fast.backends import fork_safety
from srgan_fast.backends.base import Backend, BackendUnavailable, engine_layers, register_backend
from srgan_fast.backends.native_backend import engine_refusal
from srgan_fast.weights import GeneratorWeights

_DTYPES = {np.dtype(np.uint8): "uint8", np.dtype(np.uint16): "uint16", np.dtype(np.float32): "float32"}
# __cuda_array_interface__ typestr (byte order '<' or '|') -> dtype name the engine takes.
_TYPESTRS = {"u1": "uint8", "u2": "uint16", "f4": "float32"}
# The construction-time self-check tile: odd sizes, so partial thread blocks and all four borders are covered.
_CHECK_TILE = (21, 27)
# The fork generation (fork_safety.generation()) of the process that first initialised CUDA here, or None.
_cuda_initialised_in: int | None = None


def _native_module():
    from srgan_fast import _C

    return _C


def forked_after_cuda() -> str | None:
    """Why CUDA cannot run in this process when it is a fork of one that had initialised CUDA, else None: the
    driver's state does not survive a fork, and every CUDA call in the child would fail or hang."""
    if _cuda_initialised_in is None or _cuda_initialised_in == fork_safety.generation():
        return None
    return (f"CUDA cannot run in a process forked (from pid {fork_safety.forked_from()}) after CUDA was "
            "initialised; start workers with multiprocessing.get_context('spawn') or 'forkserver'")


@functools.lru_cache(maxsize=1)
def _probe() -> str | None:
    """None when the extension has CUDA and sees a GPU, else why not (cached: only a fork changes the answer,
    and forked_after_cuda() is asked first)."""
    global _cuda_initialised_in
    try:
        _C = _native_module()
    except ImportError as exc:
        return f"srgan_fast._C is not built ({exc})"
    if not hasattr(_C, "CudaEngine"):
        return ("srgan_fast._C was built without CUDA (rebuild with nvcc on PATH, e.g. "
                "SRGAN_FAST_CUDA=ON pip install -e . --no-build-isolation)")
    _cuda_initialised_in = fork_safety.generation()  # counting the GPUs starts the driver
    try:
        count = _C.cuda_device_count()
    except RuntimeError as exc:
        return _driver_problem(str(exc))
    if count == 0:
        return "no CUDA GPU found"
    return None


def _nvidia_driver_present() -> bool:
    """Whether the driver's user-space library (what the CUDA runtime loads) is installed."""
    try:
        ctypes.CDLL("nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1")
    except OSError:
        return False
    return True


def _driver_problem(runtime_error: str) -> str:
    """Why CUDA did not start, in a user's words: the runtime's message names a build path and an error code
    (it says "driver version is insufficient" also when there is no driver at all)."""
    if "cudaErrorNoDevice" in runtime_error:
        return "no CUDA GPU found"
    if not _nvidia_driver_present():
        return "no NVIDIA driver found"
    if "cudaErrorInsufficientDriver" in runtime_error:
        return "the NVIDIA driver is older than the CUDA runtime this build uses (update the driver)"
    code = re.search(r"cudaError\w+.*", runtime_error)  # the code and its description, without the build path
    return f"the NVIDIA driver did not start: {code[0] if code else runtime_error}"


def _device_index(device: str) -> int:
    kind, _, index = device.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise ValueError(f"the cuda backend runs on 'cuda' or 'cuda:N', got device {device!r}")
    return int(index or 0)


@register_backend
class CudaBackend(Backend):
    name = "cuda"
    auto_priority = {"cuda": 30}

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return forked_after_cuda() or _probe()

    @classmethod
    def supported_precisions(cls, device: str) -> tuple[str, ...]:
        return ("fp16", "bf16")

    def __init__(self, weights: GeneratorWeights, device: str = "cuda", precision: str = "fp16", *,
                 batch_size: int = 8, use_graphs: bool = True, fuse_blocks: bool = False):
        reason = self.unavailable_reason() or engine_refusal(weights.network, "CUDA")
        if reason:
            raise BackendUnavailable(reason)
        if precision not in self.supported_precisions(device):
            raise ValueError(f"the cuda backend runs fp16 or bf16, got precision {precision!r}")
        index = _device_index(device)
        super().__init__(weights, device, precision)
        _C = _native_module()
        network = weights.network
        try:
            self._engine = _C.CudaEngine(engine_layers(weights), network.scale, network.image_skip or "none",
                                         precision, device=index, batch_size=batch_size, use_graphs=use_graphs,
                                         fuse_residual_blocks=fuse_blocks)
        except ValueError as exc:  # a layout the CUDA kernels do not run (yet)
            raise BackendUnavailable(f"model {weights.name!r} ({network.architecture}): {exc}") from None
        except RuntimeError as exc:
            raise BackendUnavailable(f"CUDA engine could not start on {device}: {exc}") from None
        report = self._engine.self_check(*_CHECK_TILE)
        if not report["passed"]:
            raise BackendUnavailable(f"CUDA engine self-check failed on {self._engine.device_name} ({precision}): "
                                     f"{report['text']}")

    def run(self, tiles):
        """[N, h, w, 3] uint8/uint16/float32 (NumPy, or a CUDA device array) -> [N, 4h, 4w, 3] of the same kind."""
        refusal = forked_after_cuda()
        if refusal:
            raise BackendUnavailable(refusal)
        if isinstance(tiles, np.ndarray):
            if tiles.dtype not in _DTYPES:
                raise ValueError(f"expected uint8, uint16 or float32 tiles, got {tiles.dtype}")
            if tiles.ndim == 4 and tiles.shape[0] == 0 and tiles.shape[3] == 3:
                scale = self.weights.scale
                return np.empty((0, scale * tiles.shape[1], scale * tiles.shape[2], 3), tiles.dtype)
            return self._engine.run(np.ascontiguousarray(tiles))
        if hasattr(tiles, "__cuda_array_interface__") or hasattr(tiles, "__dlpack__"):
            return self._run_device(tiles)
        raise TypeError(f"expected a NumPy array or a CUDA device array, got {type(tiles).__name__}")

    def _run_device(self, tiles):
        if not hasattr(tiles, "__cuda_array_interface__"):
            import torch  # DLPack-only producers (e.g. JAX) are read through torch's zero-copy importer

            tiles = torch.from_dlpack(tiles)
        interface = tiles.__cuda_array_interface__
        shape = tuple(interface["shape"])
        dtype = _TYPESTRS.get(interface["typestr"][1:])
        if len(shape) != 4 or shape[3] != 3:
            raise ValueError(f"expected device tiles of shape [N, h, w, 3], got shape {shape}")
        if dtype is None:
            raise ValueError(f"expected uint8, uint16 or float32 device tiles, got typestr {interface['typestr']!r}")
        itemsize = np.dtype(dtype).itemsize
        contiguous = tuple(int(np.prod(shape[i + 1:])) * itemsize for i in range(4))
        if interface.get("strides") not in (None, contiguous):
            raise ValueError(f"expected C-contiguous device tiles, got strides {interface['strides']}")
        n, h, w, _ = shape
        scale = self.weights.scale
        out = self._empty_like_device(tiles, (n, scale * h, scale * w, 3))
        if n == 0:
            return out
        self._engine.run_device(interface["data"][0], out.__cuda_array_interface__["data"][0], n, h, w, dtype,
                                self._producer_stream(tiles, interface))
        return out

    @staticmethod
    def _producer_stream(tiles, interface) -> int:
        """The stream the engine orders itself after (and makes wait for the result), as the interface encodes it:
        1 legacy default, 2 per-thread default, else a cudaStream_t; 0 means none (the engine blocks instead)."""
        if type(tiles).__module__.partition(".")[0] == "torch":
            # torch exports interface version 2, without a stream: use the stream torch would use next.
            import torch

            return torch.cuda.current_stream(tiles.device).cuda_stream or 1  # handle 0 is the legacy default
        return interface.get("stream") or 0

    @staticmethod
    def _empty_like_device(tiles, shape):
        module = type(tiles).__module__.partition(".")[0]
        if module == "torch":
            import torch

            return torch.empty(shape, dtype=tiles.dtype, device=tiles.device)
        if module == "cupy":
            import cupy

            with cupy.cuda.Device(tiles.device.id):
                return cupy.empty(shape, dtype=tiles.dtype)
        raise TypeError(f"device tiles of type {type(tiles).__name__} are not supported: pass a torch or cupy array")

    def bytes_per_input_pixel(self) -> int:
        # Activations in fp16/bf16: four 1x buffers, the 2x and 4x upsampled maps (4C, 16C) = 24C values;
        # plus two I/O slots of up to float32 in (3 values) and out (48 values).
        return 48 * self.weights.channels + 2 * 4 * (3 + 48)

    def describe(self) -> str:
        return f"cuda ({self._engine.device_name}, {self.device}, {self.precision})"
