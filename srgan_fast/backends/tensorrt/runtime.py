"""Running a serialized TensorRT engine: buffers allocated once, enqueueV3 on CUDA streams, CUDA graph replay.

For each input shape the runner keeps two *slots*. A slot is one CUDA stream with its own execution context
(TensorRT contexts are not safe to share between concurrent streams), device input/output buffers bound once
with ``set_tensor_address``, pinned host staging buffers, and, after one plain ``execute_async_v3`` that lets
TensorRT finish its shape-dependent setup, a CUDA graph of that launch. Host batches alternate between the two
slots, so that while the GPU uploads, runs and downloads batch i, the host collects batch i-1: copies overlap
compute as in the CUDA backend's tile pipeline.

Device memory, streams, events, pinned memory and CUDA graphs come from torch.cuda (the `tensorrt` extra
installs torch); torch CUDA tensors and any DLPack-exporting CUDA array are accepted as device inputs.
Nothing is imported from TensorRT, torch or CUDA until a runner is made.
"""
from __future__ import annotations

import logging
import threading

import numpy as np

from srgan_fast.backends.onnx_graph import INPUT_NAME, OUTPUT_NAME

log = logging.getLogger(__name__)
SLOTS_PER_SHAPE = 2  # ping-pong: one batch computing while the other is staged or collected


class EngineLoadError(RuntimeError):
    """TensorRT refused a serialized engine (another TensorRT version or GPU, or damaged bytes)."""


def _torch_dtype(trt_dtype):
    import tensorrt as trt
    import torch

    table = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16, trt.DataType.UINT8: torch.uint8}
    if hasattr(trt.DataType, "BF16"):
        table[trt.DataType.BF16] = torch.bfloat16
    return table[trt_dtype]


class _Slot:
    """One stream, its execution context, I/O buffers bound once, pinned staging, and the captured launch."""

    def __init__(self, engine, index: int, input_shape: tuple[int, ...], dtypes, device, use_cuda_graph: bool):
        import torch

        in_dtype, out_dtype = dtypes
        self.stream = torch.cuda.Stream(device)
        self.context = engine.create_execution_context()
        if engine.num_optimization_profiles > 1:
            # A dynamic engine has one profile per slot: contexts running concurrently must not share one.
            self.context.set_optimization_profile_async(index, self.stream.cuda_stream)
            self.stream.synchronize()
        if not self.context.set_input_shape(INPUT_NAME, input_shape):
            raise ValueError(f"input shape {input_shape} is outside the engine's optimization profile")
        output_shape = tuple(self.context.get_tensor_shape(OUTPUT_NAME))
        self.device_in = torch.empty(input_shape, dtype=in_dtype, device=device)
        self.device_out = torch.empty(output_shape, dtype=out_dtype, device=device)
        self.host_in = torch.empty(input_shape, dtype=in_dtype, pin_memory=True)
        self.host_out = torch.empty(output_shape, dtype=out_dtype, pin_memory=True)
        self.context.set_tensor_address(INPUT_NAME, self.device_in.data_ptr())
        self.context.set_tensor_address(OUTPUT_NAME, self.device_out.data_ptr())
        self.done = torch.cuda.Event()
        self.graph = None
        with torch.cuda.stream(self.stream):
            self._enqueue()  # the first launch after a shape change does setup work that must not be captured
        self.stream.synchronize()
        if use_cuda_graph:
            self.graph = self._capture()

    def _enqueue(self) -> None:
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise RuntimeError("TensorRT execute_async_v3 failed (see TensorRT's log)")

    def _capture(self):
        import torch

        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, stream=self.stream):
                self._enqueue()
        except RuntimeError as exc:  # some engines cannot be captured; they still run, one enqueue per batch
            log.info("CUDA graph capture of the TensorRT launch failed (%s); enqueueing directly", exc)
            return None
        return graph

    def launch(self) -> None:
        """Run the engine on device_in -> device_out, on this slot's stream (the caller made it current)."""
        if self.graph is not None:
            self.graph.replay()
        else:
            self._enqueue()


class EngineRunner:
    """A deserialized engine and its slots; runs batches in the engine's own I/O layout and dtype.

    Static engines take exactly their built batch shape; the backend pads the last batch. One run at a time:
    the slots' contexts, staging buffers and graphs are bound to fixed memory, so concurrent callers take turns
    (the GPU would run their launches one after the other anyway).
    """

    def __init__(self, engine_bytes: bytes, device_index: int = 0, use_cuda_graph: bool = True):
        import tensorrt as trt
        import torch

        self.device = torch.device("cuda", device_index)
        self.use_cuda_graph = use_cuda_graph
        self._logger = trt.Logger(trt.Logger.WARNING)
        with torch.cuda.device(self.device):
            self._runtime = trt.Runtime(self._logger)
            self.engine = self._runtime.deserialize_cuda_engine(engine_bytes)
        if self.engine is None:
            raise EngineLoadError("TensorRT could not deserialize the engine (built by another TensorRT version "
                                  "or for another GPU, or damaged)")
        names = {self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)}
        if names != {INPUT_NAME, OUTPUT_NAME}:
            raise EngineLoadError(f"engine has I/O tensors {sorted(names)}, expected {INPUT_NAME!r} and "
                                  f"{OUTPUT_NAME!r}")
        self.dtypes = (_torch_dtype(self.engine.get_tensor_dtype(INPUT_NAME)),
                       _torch_dtype(self.engine.get_tensor_dtype(OUTPUT_NAME)))
        self._slots: dict[tuple[int, ...], list[_Slot]] = {}
        self._lock = threading.Lock()

    def slots(self, input_shape: tuple[int, ...]) -> list[_Slot]:
        import torch

        if input_shape not in self._slots:
            with torch.cuda.device(self.device):  # TensorRT allocates on the current device
                self._slots[input_shape] = [_Slot(self.engine, index, input_shape, self.dtypes, self.device,
                                                  self.use_cuda_graph) for index in range(SLOTS_PER_SHAPE)]
        return self._slots[input_shape]

    def run_host(self, batches: list[np.ndarray]) -> list[np.ndarray]:
        """Host arrays (each one launch, in the engine's layout) -> host outputs, copies overlapping compute."""
        with self._lock:
            return self._run_host(batches)

    def _run_host(self, batches: list[np.ndarray]) -> list[np.ndarray]:
        import torch

        results: list[np.ndarray | None] = [None] * len(batches)
        pending: tuple[_Slot, int] | None = None
        for i, batch in enumerate(batches):
            slot = self.slots(tuple(batch.shape))[i % SLOTS_PER_SHAPE]
            slot.host_in.numpy()[...] = batch  # the slot's previous batch (i-2) was collected already
            with torch.cuda.device(self.device), torch.cuda.stream(slot.stream):
                slot.device_in.copy_(slot.host_in, non_blocking=True)
                slot.launch()
                slot.host_out.copy_(slot.device_out, non_blocking=True)
                slot.done.record(slot.stream)
            if pending is not None:
                results[pending[1]] = self._collect(pending[0])
            pending = (slot, i)
        if pending is not None:
            results[pending[1]] = self._collect(pending[0])
        return results

    @staticmethod
    def _collect(slot: _Slot) -> np.ndarray:
        slot.done.synchronize()
        return slot.host_out.numpy().copy()

    def run_device(self, batch):
        """A CUDA tensor (torch, or any object with ``__dlpack__``) in the engine's layout -> a new torch CUDA tensor.

        Runs on the caller's current stream's order: the slot's stream waits for it, and it waits for the result.
        """
        with self._lock:
            return self._run_device(batch)

    def _run_device(self, batch):
        import torch

        x = batch if isinstance(batch, torch.Tensor) else torch.from_dlpack(batch)
        if x.device != self.device:
            raise ValueError(f"expected a tensor on {self.device}, got one on {x.device}")
        slot = self.slots(tuple(x.shape))[0]
        caller = torch.cuda.current_stream(self.device)
        slot.stream.wait_stream(caller)
        x.record_stream(slot.stream)  # the caller may free x before the slot's stream has read it
        with torch.cuda.device(self.device), torch.cuda.stream(slot.stream):
            slot.device_in.copy_(x.to(self.dtypes[0]), non_blocking=True)
            slot.launch()
            out = slot.device_out.clone()
        caller.wait_stream(slot.stream)
        out.record_stream(caller)
        return out
