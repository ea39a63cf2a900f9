"""Backend "onnxruntime": the exported ONNX graph (srgan_fast.backends.onnx_graph) run by onnxruntime.

One graph per tile shape (static H/W, dynamic batch) so that onnxruntime can plan its memory once; or, with
``dynamic=True``, one graph for every shape. It runs on whichever execution providers this onnxruntime build has:
CPU everywhere, CUDA or TensorRT where a GPU build is installed. It is also the oracle the export tests use.
"""
from __future__ import annotations

import functools
import importlib.util
import threading
from collections import OrderedDict
from collections.abc import Mapping

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

_MAX_SESSIONS = 4  # distinct tile shapes kept; a tiler uses one or two (interior and edge) per image size


@functools.lru_cache(maxsize=1)
def _available_providers() -> tuple[str, ...]:
    import onnxruntime

    return tuple(onnxruntime.get_available_providers())


class _ProviderPriority(Mapping):
    """``auto_priority`` that offers "cuda" only when this onnxruntime build has the CUDA provider.

    Looked up lazily so that importing the backend registry does not import onnxruntime.
    """

    _PRIORITY = {"cpu": 5, "cuda": 15}

    def _kinds(self) -> list[str]:
        if importlib.util.find_spec("onnxruntime") is None:
            return list(self._PRIORITY)
        return [k for k in self._PRIORITY if k != "cuda" or "CUDAExecutionProvider" in _available_providers()]

    def __getitem__(self, kind: str) -> int:
        if kind not in self._kinds():
            raise KeyError(kind)
        return self._PRIORITY[kind]

    def __iter__(self):
        return iter(self._kinds())

    def __len__(self) -> int:
        return len(self._kinds())


def _providers_for(device: str) -> list:
    parsed = parse_device(device)
    if parsed.kind == "cpu":
        return ["CPUExecutionProvider"]
    available = _available_providers()
    if "CUDAExecutionProvider" not in available:
        raise BackendUnavailable(f"device {device!r} requested but this onnxruntime has no CUDA provider "
                                 f"(has {', '.join(available)}; pip install onnxruntime-gpu)")
    return [("CUDAExecutionProvider", {"device_id": parsed.gpu_index}), "CPUExecutionProvider"]


@register_backend
class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    auto_priority = _ProviderPriority()

    @classmethod
    def unavailable_reason(cls) -> str | None:
        missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
        if missing:
            return f"{' and '.join(missing)} not installed (pip install 'srgan_fast[onnx]')"
        return None

    @classmethod
    def supported_precisions(cls, device: str) -> tuple[str, ...]:
        return ("fp32", "fp16")

    def __init__(self, weights: GeneratorWeights, device: str, precision: str, *, dynamic: bool = False,
                 providers: list | None = None, threads: int = 0):
        """providers: onnxruntime execution providers, overriding the ones chosen from ``device``;
        threads: intra-op threads (0: onnxruntime's default, one per core)."""
        reason = self.unavailable_reason()
        if reason:
            raise BackendUnavailable(reason)
        if precision not in self.supported_precisions(device):
            raise ValueError(f"onnxruntime backend precision must be one of "
                             f"{', '.join(self.supported_precisions(device))}, got {precision!r}")
        super().__init__(weights, device, precision)
        self.providers = providers if providers is not None else _providers_for(device)
        self.dynamic, self.threads = dynamic, threads
        self._sessions: OrderedDict[tuple, object] = OrderedDict()
        # InferenceSession.run is thread-safe; the cache of sessions around it is not.
        self._sessions_lock = threading.Lock()

    def _session(self, io: str, height: int, width: int):
        key = (io,) if self.dynamic else (io, height, width)
        with self._sessions_lock:
            if key in self._sessions:
                self._sessions.move_to_end(key)
                return self._sessions[key]
            return self._new_session(key, io, height, width)

    def _new_session(self, key: tuple, io: str, height: int, width: int):
        import onnxruntime

        from srgan_fast.backends.onnx_graph import build_onnx_model

        model = build_onnx_model(self.weights, tile=None if self.dynamic else (height, width),
                                 precision=self.precision, io=io)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads
        session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=self.providers)
        self._sessions[key] = session
        if len(self._sessions) > _MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return session

    def run(self, tiles: np.ndarray) -> np.ndarray:
        """[N, h, w, 3] uint8/uint16/float32 NHWC -> [N, 4h, 4w, 3] same dtype, rounded and clamped."""
        if tiles.ndim != 4 or tiles.shape[-1] != 3:
            raise ValueError(f"expected tiles of shape [N, h, w, 3], got shape {tiles.shape}")
        if tiles.dtype == np.uint8:
            # Conversion, clamp and rounding happen inside the graph.
            session = self._session("uint8", tiles.shape[1], tiles.shape[2])
            return session.run(None, {"image": np.ascontiguousarray(tiles)})[0]
        x = tiles_to_unit_nchw(tiles)
        y = self._session("float", tiles.shape[1], tiles.shape[2]).run(None, {"image": x})[0]
        return unit_nchw_to_tiles(y, tiles.dtype)

    def bytes_per_input_pixel(self) -> int:
        # Like torch: the description's peak live set, plus a third for onnxruntime's arena slack.
        element = 4 if self.precision == "fp32" else 2
        return int(self.weights.network.peak_activation_values_per_input_pixel() * element * 4 / 3) + 64
