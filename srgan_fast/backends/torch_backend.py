"""Backend "torch": the reference model in PyTorch, on CPU or CUDA, fp32/fp16/bf16, NCHW or channels_last."""
from __future__ import annotations

import importlib.util

import numpy as np

from srgan_fast.backends import fork_safety
from srgan_fast.backends.base import FULL_SCALE, Backend, BackendUnavailable, register_backend
from srgan_fast.weights import GeneratorWeights

_TORCH_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def build_generator(weights: GeneratorWeights):
    """The torch module of ``weights.network`` holding these weights (float32, eval mode)."""
    import torch

    from srgan_fast.reference.module import build_module

    module = build_module(weights.network)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in weights.tensors.items()})
    return module.eval()


@register_backend
class TorchBackend(Backend):
    name = "torch"
    auto_priority = {"cpu": 10, "cuda": 10}

    @classmethod
    def unavailable_reason(cls) -> str | None:
        if importlib.util.find_spec("torch") is None:
            return "PyTorch is not installed (pip install 'srgan_fast[torch]')"
        return None

    @classmethod
    def supported_precisions(cls, device: str) -> tuple[str, ...]:
        return ("fp32", "fp16", "bf16") if device.startswith("cuda") else ("fp32", "bf16")

    def __init__(self, weights: GeneratorWeights, device: str, precision: str, channels_last: bool = True,
                 compile_mode: str | None = None):
        """compile_mode: run the model through ``torch.compile(mode=compile_mode)``, e.g. "max-autotune"
        (which also replays CUDA graphs on GPUs); each new tile shape compiles once, which takes minutes."""
        reason = self.unavailable_reason()
        if reason:
            raise BackendUnavailable(reason)
        import torch

        super().__init__(weights, device, precision)
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailable(f"device {device!r} requested but torch sees no CUDA GPU")
        self.channels_last = channels_last
        self._torch = torch
        self._dtype = getattr(torch, _TORCH_DTYPES[precision])
        self._memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = build_generator(weights).to(device=device, dtype=self._dtype, memory_format=self._memory_format)
        self.compile_mode = compile_mode
        if compile_mode is not None:
            self.model = torch.compile(self.model, mode=compile_mode)

    def run(self, tiles: np.ndarray) -> np.ndarray:
        # torch's CPU kernels run on OpenMP too, whose pool in the forking thread is stale in a forked child.
        return fork_safety.run_in_child(self._run, tiles)

    def _run(self, tiles: np.ndarray) -> np.ndarray:
        torch = self._torch
        full_scale = FULL_SCALE[tiles.dtype]
        # torch has no uint16 arithmetic on every device: widen it to int32 before upload.
        source = tiles.astype(np.int32) if tiles.dtype == np.uint16 else tiles
        if not source.flags.writeable:  # torch tensors cannot be read-only; copy the (small) tile batch
            source = source.copy()
        with torch.inference_mode():
            x = torch.from_numpy(source).to(self.device).permute(0, 3, 1, 2).float()
            # Scale in float32 (16-bit levels are not exact in bf16/fp16), then cast to the model's precision.
            x = (x / full_scale).to(self._dtype).contiguous(memory_format=self._memory_format)
            y = self.model(x).float().clamp_(0.0, 1.0).permute(0, 2, 3, 1)
            if full_scale == 1.0:
                return y.contiguous().cpu().numpy()
            y = (y * full_scale).round_()
            return y.to(torch.int32).cpu().numpy().astype(tiles.dtype)

    def bytes_per_input_pixel(self) -> int:
        # The module frees each output after its last reader, so the description's peak live set is its
        # working set; 64 bytes of headroom for the tile's own pixels, as before.
        element = 4 if self.precision == "fp32" else 2
        return int(self.weights.network.peak_activation_values_per_input_pixel() * element) + 64

    def describe(self) -> str:
        layout = "channels_last" if self.channels_last else "NCHW"
        compiled = f", torch.compile {self.compile_mode}" if self.compile_mode else ""
        return f"torch ({self.device}, {self.precision}, {layout}{compiled})"
