"""What an engine is built for: precision, shapes and builder options, the GPU, and the cache key over all of it.

Pure Python (no TensorRT), so that the validation and the cache key are tested everywhere.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping

from srgan_fast.backends.onnx_graph import IO_MODES, QuantSpec, default_opset
from srgan_fast.options import PRECISIONS, parse_precision

# The float type of the layers that are not quantized; int8/fp8 convs sit between fp16 layers.
FLOAT_PRECISION = {"fp32": "fp32", "fp16": "fp16", "bf16": "bf16", "int8": "fp16", "fp8": "fp16"}
# Lowest compute capability with hardware for each precision: bf16 needs Ampere, fp8 Ada or Hopper.
MIN_COMPUTE_CAPABILITY = {"fp32": (7, 5), "fp16": (7, 5), "bf16": (8, 0), "int8": (7, 5), "fp8": (8, 9)}
# Bump when the exported graph changes in a way that changes engines built from it.
GRAPH_REVISION = 2  # 2: int8/fp8 quantize srgan_fast.architecture.int8_convs (were all but first and last)


@dataclass(frozen=True)
class DeviceInfo:
    name: str
    compute_capability: tuple[int, int]


@dataclass(frozen=True)
class BuildOptions:
    """One engine's build configuration.

    tile: the (H, W) of input tiles the engine is tuned for. batch: tiles per launch.
    io: "uint8" (NHWC uint8, conversions inside the engine) or "float" (NCHW float32 in [0, 1]).
    dynamic: None for a static engine (default: measurably faster), or ((min_h, min_w), (max_h, max_w)) for one
      optimization profile covering those sizes and batches 1..batch, tuned at ``tile``.
    optimization_level: TensorRT builder optimization level 0..5 (3 is TensorRT's default).
    workspace_mib: cap on the builder's scratch memory pool, None for TensorRT's default (all device memory).
    """

    precision: str = "fp16"
    tile: tuple[int, int] = (128, 128)
    batch: int = 1
    io: str = "uint8"
    dynamic: tuple[tuple[int, int], tuple[int, int]] | None = None
    optimization_level: int = 3
    workspace_mib: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "precision", parse_precision(self.precision, PRECISIONS, "TensorRT precision"))
        if len(tuple(self.tile)) != 2 or min(self.tile) < 1:
            raise ValueError(f"tile must be (height, width) of positive ints, got {self.tile!r}")
        object.__setattr__(self, "tile", tuple(int(v) for v in self.tile))
        if self.batch < 1:
            raise ValueError(f"batch must be >= 1, got {self.batch}")
        if self.io not in IO_MODES:
            raise ValueError(f"io must be one of {', '.join(IO_MODES)}, got {self.io!r}")
        if not 0 <= self.optimization_level <= 5:
            raise ValueError(f"optimization_level must be in 0..5, got {self.optimization_level}")
        if self.workspace_mib is not None and self.workspace_mib < 1:
            raise ValueError(f"workspace_mib must be >= 1 or None, got {self.workspace_mib}")
        if self.dynamic is not None:
            (min_h, min_w), (max_h, max_w) = self.dynamic
            if not (1 <= min_h <= self.tile[0] <= max_h and 1 <= min_w <= self.tile[1] <= max_w):
                raise ValueError(f"dynamic range {self.dynamic} must contain the tile {self.tile} "
                                 "as ((min_h, min_w), (max_h, max_w))")
            object.__setattr__(self, "dynamic", ((int(min_h), int(min_w)), (int(max_h), int(max_w))))

    @property
    def float_precision(self) -> str:
        return FLOAT_PRECISION[self.precision]

    @property
    def quantized(self) -> bool:
        return self.precision in ("int8", "fp8")

    def graph_kwargs(self, activation_amax: Mapping[str, float] | None = None) -> dict:
        """Arguments of ``onnx_export.build_onnx_model`` for the graph this engine is built from."""
        quant = QuantSpec(self.precision, dict(activation_amax or {})) if self.quantized else None
        return {"tile": None if self.dynamic else self.tile, "batch": None if self.dynamic else self.batch,
                "precision": self.float_precision, "io": self.io, "quant": quant,
                "opset": default_opset(self.float_precision, quant)}

    def input_shape(self, batch: int, height: int, width: int) -> tuple[int, int, int, int]:
        return (batch, height, width, 3) if self.io == "uint8" else (batch, 3, height, width)

    def profile_shapes(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """(min, opt, max) input shapes for the optimization profile; all equal for a static engine."""
        opt = self.input_shape(self.batch, *self.tile)
        if self.dynamic is None:
            return opt, opt, opt
        (min_h, min_w), (max_h, max_w) = self.dynamic
        return self.input_shape(1, min_h, min_w), opt, self.input_shape(self.batch, max_h, max_w)

    def key_fields(self) -> dict:
        fields = asdict(self)
        fields["tile"] = list(self.tile)
        fields["dynamic"] = [list(v) for v in self.dynamic] if self.dynamic else None
        return fields


def check_device_supports(precision: str, device: DeviceInfo) -> None:
    need = MIN_COMPUTE_CAPABILITY[precision]
    if tuple(device.compute_capability) < need:
        have = ".".join(map(str, device.compute_capability))
        raise ValueError(f"{precision} needs a GPU of compute capability >= {need[0]}.{need[1]}; "
                         f"{device.name} has {have}")


def engine_fields(weights_sha256: str, options: BuildOptions, device: DeviceInfo, tensorrt_version: str,
                  calibration_sha256: str | None) -> dict:
    """Everything an engine depends on: the cache key is computed over exactly these fields."""
    return {"tensorrt": tensorrt_version, "gpu": device.name,
            "compute_capability": ".".join(map(str, device.compute_capability)),
            "weights_sha256": weights_sha256, "graph_revision": GRAPH_REVISION,
            "calibration_sha256": calibration_sha256, **options.key_fields()}
