"""Building TensorRT engines: exported ONNX graph -> ONNX parser -> strongly typed network -> serialized engine.

Precision lives in the graph, not in builder flags: TensorRT 11 removed the weak-typing flags (FP16, BF16,
INT8, FP8) and the int8 calibrator, and strongly typed networks work the same way on TensorRT 10. So an fp16
engine is built from the fp16 graph, bf16 from the bf16 graph, and int8/fp8 from the fp16 graph with explicit
Quantize/DequantizeLinear pairs whose scales come from ``calibration``.

Static shapes by default (the graph itself has fixed N, H, W, so every kernel is tuned for the tile); with
``BuildOptions.dynamic`` one optimization profile spans the range. A timing cache, persisted next to the
engines and keyed by TensorRT version and GPU, makes later builds with the same layers much faster.

Everything that touches TensorRT or CUDA is imported inside the functions: this module imports without them.
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

from srgan_fast.io.atomic import write_bytes_atomically
from srgan_fast.backends.onnx_graph import INPUT_NAME, build_onnx_model
from srgan_fast.backends.tensorrt.cache import CacheWarning, EngineCache, cache_key
from srgan_fast.backends.tensorrt.options import BuildOptions, DeviceInfo, check_device_supports, engine_fields
from srgan_fast.backends.tensorrt.runtime import SLOTS_PER_SHAPE
from srgan_fast.weights import GeneratorWeights

log = logging.getLogger(__name__)


class EngineBuildError(RuntimeError):
    """TensorRT could not parse the graph or build an engine; the message carries TensorRT's reasons."""


def cuda_device_info(device_index: int = 0) -> DeviceInfo:
    import torch

    if not torch.cuda.is_available():
        raise EngineBuildError("TensorRT needs a CUDA GPU, and torch sees none")
    return DeviceInfo(torch.cuda.get_device_name(device_index), tuple(torch.cuda.get_device_capability(device_index)))


def tensorrt_version() -> str:
    import tensorrt

    return tensorrt.__version__


def onnx_for_engine(weights: GeneratorWeights, options: BuildOptions,
                    activation_amax: dict[str, float] | None = None) -> bytes:
    """The serialized ONNX graph an engine with these options is built from (checked by onnx.checker)."""
    if options.quantized and not activation_amax:
        raise ValueError(f"{options.precision} engines need calibration: give calibration images")
    return build_onnx_model(weights, **options.graph_kwargs(activation_amax)).SerializeToString()


def _timing_cache_path(cache: EngineCache, device: DeviceInfo, version: str) -> Path:
    # Tactic timings are only valid for one GPU model and TensorRT version.
    key = cache_key({"tensorrt": version, "gpu": device.name, "cc": list(device.compute_capability)})
    return cache.path_for(f"timing-{key[:32]}", suffix=".cache")


def build_serialized_engine(onnx_bytes: bytes, options: BuildOptions, timing_cache_path: Path | None) -> bytes:
    """Parse, configure and build; returns the serialized engine (the plan)."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    # Required for precision-in-the-graph on TensorRT 10; accepted and ignored by 11, where it is always on.
    if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = "; ".join(parser.get_error(i).desc() for i in range(parser.num_errors))
        raise EngineBuildError(f"TensorRT's ONNX parser rejected the exported graph: {errors}")

    config = builder.create_builder_config()
    config.builder_optimization_level = options.optimization_level
    if options.workspace_mib is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mib << 20)
    if options.precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
        # "fp32" means fp32 accuracy; TF32 convolutions keep only 10 mantissa bits.
        config.clear_flag(trt.BuilderFlag.TF32)
    if options.dynamic is not None:
        # Contexts in concurrent use on a dynamic engine need distinct profiles: one per runtime slot.
        for _ in range(SLOTS_PER_SHAPE):
            profile = builder.create_optimization_profile()
            profile.set_shape(INPUT_NAME, *options.profile_shapes())
            config.add_optimization_profile(profile)

    timing_cache = _load_timing_cache(config, timing_cache_path)
    log.info("building TensorRT engine: %s", options)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"TensorRT failed to build an engine for {options} (see TensorRT's log above)")
    if timing_cache_path is not None and timing_cache is not None:
        write_bytes_atomically(timing_cache_path, bytes(memoryview(config.get_timing_cache().serialize())))
    return bytes(memoryview(serialized))


def _load_timing_cache(config, path: Path | None):
    if path is None:
        return None
    data = path.read_bytes() if path.exists() else b""
    try:
        cache = config.create_timing_cache(data)
        usable = cache is not None and config.set_timing_cache(cache, ignore_mismatch=False)
    except (RuntimeError, TypeError, ValueError):  # how the bindings surface a blob TensorRT cannot parse
        usable = False
    if not usable:
        warnings.warn(f"TensorRT timing cache {path} is unusable (corrupted or from another setup); "
                      "starting a new one", CacheWarning, stacklevel=3)
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
    return cache


def engine_for(weights: GeneratorWeights, options: BuildOptions, *, device_index: int = 0,
               cache: EngineCache | None = None, calibration_images: str | Path | None = None,
               progress: bool = False) -> tuple[bytes, str]:
    """The serialized engine for these weights and options on this GPU: from the cache, else built and cached.

    Returns (engine bytes, cache key). int8/fp8 need ``calibration_images`` (a folder); the table of activation
    ranges is cached beside the engines, keyed by the weights, the images and the tile. progress: a bar while
    the table is measured.
    """
    from srgan_fast.backends.tensorrt.calibration import calibrate, table_sha256

    cache = cache if cache is not None else EngineCache()
    device = cuda_device_info(device_index)
    check_device_supports(options.precision, device)
    amax = None
    if options.quantized:
        if calibration_images is None:
            raise ValueError(f"{options.precision} engines need calibration images: pass a folder of sample "
                             "images (calibration_images=... or --calibration-images DIR)")
        amax = calibrate(weights, calibration_images, options.tile, options.precision, cache.directory,
                         progress=progress)
    version = tensorrt_version()
    fields = engine_fields(weights.sha256, options, device, version, table_sha256(amax) if amax else None)
    key = cache_key(fields)
    engine = cache.load(key)
    if engine is None:
        engine = build_serialized_engine(onnx_for_engine(weights, options, amax), options,
                                         _timing_cache_path(cache, device, version))
        path = cache.store(key, fields, engine)
        log.info("cached TensorRT engine at %s", path)
    return engine, key
