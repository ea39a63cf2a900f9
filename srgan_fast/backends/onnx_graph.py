"""The folded generator as an ONNX graph: for onnxruntime, TensorRT and any other ONNX consumer.

The graph is written node by node from the weights' network description (no torch needed, so a TensorRT
machine without PyTorch can export), one layer after another as ``srgan_fast.architecture.layers`` defines
them: Conv, then DepthToSpace in CRD mode (PixelShuffle's permutation), PRelu for learned slopes or
LeakyRelu/Relu for fixed ones, Add for the residual; the image skip is a Resize of the input added at the end.
Tests compare it with the torch reference of the same description.

Layouts and value ranges at the graph's edges (``io``), s the network's scale:
  "float"  input  "image"  [N, 3, H, W]   float32 in [0, 1]    output "upscaled" [N, 3, sH, sW] float32, not clamped
  "uint8"  input  "image"  [N, H, W, 3]   uint8 (0..255)       output "upscaled" [N, sH, sW, 3] uint8, rounded+clamped
The edges stay float32/uint8 whatever the precision: casts to fp16/bf16 happen inside the graph, where a fused
engine can fold them into the first and last kernels. The image skip is computed and added in float32, after
the cast back, as the CPU engine's image store (``csrc/ops/cpu/image_output.cpp``) adds it.

Precisions: "fp32", "fp16", "bf16" (weights and activations in that type). For TensorRT's int8/fp8, a
``QuantSpec`` adds explicit Quantize/DequantizeLinear pairs around the convs of
``srgan_fast.architecture.int8_convs`` (see srgan_fast.backends.tensorrt).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from srgan_fast.architecture import IMAGE, Conv, Network, int8_convs
from srgan_fast.io.atomic import write_bytes_atomically
from srgan_fast.options import FLOAT_PRECISIONS, parse_precision
from srgan_fast.weights import GeneratorWeights, load_weights, weights_for

IO_MODES = ("float", "uint8")
QUANT_KINDS = ("int8", "fp8")
MIN_OPSET = 17
# QuantizeLinear with fp16 scales and float8 types arrived in opset 19, bfloat16 Conv in opset 22.
MIN_QUANT_OPSET = 19
MIN_BF16_OPSET = 22
INPUT_NAME, OUTPUT_NAME = "image", "upscaled"
FP8_E4M3_MAX = 448.0


@dataclass(frozen=True)
class QuantSpec:
    """Explicit quantization of the body convs: int8 (symmetric, per-channel weights) or fp8 E4M3.

    activation_amax: conv name (of ``srgan_fast.architecture.int8_convs``, the convs quantized; the others stay
    in the float precision) -> largest |value| its input may take; inputs beyond it saturate.
    """

    kind: str
    activation_amax: Mapping[str, float] = field(default_factory=dict)


def as_weights(weights_or_model) -> GeneratorWeights:
    """GeneratorWeights, a model name / .safetensors path, or a torch module of a network description
    (``srgan_fast.reference.module.NetworkModule``, e.g. a training ``Generator``; folded here if it has BN)."""
    if isinstance(weights_or_model, GeneratorWeights):
        return weights_or_model
    if isinstance(weights_or_model, (str, os.PathLike)):
        return load_weights(weights_or_model)
    if hasattr(weights_or_model, "state_dict") and isinstance(getattr(weights_or_model, "network", None), Network):
        from srgan_fast.reference.module import fold_batchnorm

        folded = fold_batchnorm(weights_or_model)
        tensors = {k: v.detach().cpu().float().numpy() for k, v in folded.state_dict().items()}
        return weights_for(folded.network, tensors, "torch-module", source="<torch module>")
    raise TypeError(f"expected GeneratorWeights, a model name, a .safetensors path or a srgan_fast network "
                    f"module, got {type(weights_or_model).__name__}")


def default_opset(precision: str, quant: QuantSpec | None = None) -> int:
    """The lowest opset that has every operator type this export needs (the widest consumer support)."""
    if precision == "bf16":
        return MIN_BF16_OPSET
    return MIN_QUANT_OPSET if quant is not None else MIN_OPSET


def _check_args(tile, batch, precision, io, opset, quant) -> None:
    if tile is not None and (len(tuple(tile)) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0
                                                               for v in tile)):
        raise ValueError(f"tile must be (height, width) of positive ints or None for dynamic, got {tile!r}")
    if batch is not None and not (isinstance(batch, (int, np.integer)) and batch > 0):
        raise ValueError(f"batch must be a positive int or None for dynamic, got {batch!r}")
    parse_precision(precision, FLOAT_PRECISIONS, "ONNX graph precision")
    if io not in IO_MODES:
        raise ValueError(f"io must be one of {', '.join(IO_MODES)}, got {io!r}")
    if opset < MIN_OPSET:
        raise ValueError(f"opset must be >= {MIN_OPSET}, got {opset}")
    if precision == "bf16" and opset < MIN_BF16_OPSET:
        raise ValueError(f"bf16 needs opset >= {MIN_BF16_OPSET} (bfloat16 Conv), got {opset}")
    if quant is not None:
        if quant.kind not in QUANT_KINDS:
            raise ValueError(f"quantization kind must be one of {', '.join(QUANT_KINDS)}, got {quant.kind!r}")
        if opset < MIN_QUANT_OPSET:
            raise ValueError(f"{quant.kind} quantization needs opset >= {MIN_QUANT_OPSET}, got {opset}")
        if precision == "fp32":
            raise ValueError(f"{quant.kind} quantization runs around fp16 or bf16 layers, got precision 'fp32'")


class _GraphWriter:
    """Accumulates nodes and initializers; tensor names follow the torch parameter names they come from."""

    def __init__(self, weights: GeneratorWeights, precision: str, quant: QuantSpec | None, expose: Sequence[str]):
        import onnx
        from onnx import numpy_helper

        self.onnx, self.numpy_helper = onnx, numpy_helper
        self.weights, self.quant, self.expose = weights, quant, set(expose)
        self.float_type = {"fp32": onnx.TensorProto.FLOAT, "fp16": onnx.TensorProto.FLOAT16,
                           "bf16": onnx.TensorProto.BFLOAT16}[precision]
        self.np_float = _numpy_dtype(precision)
        self.nodes: list = []
        self.initializers: list = []
        self.exposed: dict[str, str] = {}

    def node(self, op: str, inputs: list[str], output: str, **attrs) -> str:
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def constant(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(self.numpy_helper.from_array(np.asarray(array), name))
        return name

    def param(self, name: str) -> str:
        return self.constant(name, self.weights.tensors[name].astype(self.np_float))

    def conv(self, x: str, prefix: str) -> str:
        weight = self.weights.tensors[f"{prefix}.weight"]
        pad = weight.shape[-1] // 2
        if prefix in self.expose:
            self.exposed[prefix] = x
        if self._quantizes(prefix):
            w, x = self._quantized_weight(prefix, weight), self._quantize_activation(x, prefix)
        else:
            w = self.param(f"{prefix}.weight")
        return self.node("Conv", [x, w, self.param(f"{prefix}.bias")], f"{prefix}.out", pads=[pad] * 4)

    def activation(self, x: str, conv: Conv) -> str:
        output = f"{conv.name}.act"
        if conv.activation.slopes_tensor is not None:
            # ONNX PRelu broadcasts the slope from the right: [C, 1, 1] against [N, C, H, W].
            name = conv.activation.slopes_tensor
            slope = self.weights.tensors[name].reshape(-1, 1, 1).astype(self.np_float)
            return self.node("PRelu", [x, self.constant(name, slope)], output)
        if conv.activation.slope == 0.0:
            return self.node("Relu", [x], output)
        return self.node("LeakyRelu", [x], output, alpha=float(conv.activation.slope))

    def _quantizes(self, prefix: str) -> bool:
        return self.quant is not None and prefix in int8_convs(self.weights.network)

    def _code_type(self):
        return self.onnx.TensorProto.INT8 if self.quant.kind == "int8" else self.onnx.TensorProto.FLOAT8E4M3FN

    def _zero_point(self, name: str) -> str:
        # Symmetric quantization: TensorRT requires a zero point of 0; its type selects int8 or fp8.
        self.initializers.append(self.onnx.helper.make_tensor(name, self._code_type(), [], [0]))
        return name

    def _quantize_activation(self, x: str, prefix: str) -> str:
        try:
            amax = float(self.quant.activation_amax[prefix])
        except KeyError:
            raise ValueError(f"QuantSpec.activation_amax lacks {prefix!r} (expected every name of "
                             f"int8_convs(network))") from None
        code_max = 127.0 if self.quant.kind == "int8" else FP8_E4M3_MAX
        scale = self.constant(f"{prefix}.input_scale", np.array(max(amax, 1e-8) / code_max, dtype=self.np_float))
        zero = self._zero_point(f"{prefix}.input_zero")
        q = self.node("QuantizeLinear", [x, scale, zero], f"{prefix}.input_q")
        return self.node("DequantizeLinear", [q, scale, zero], f"{prefix}.input_dq")

    def _quantized_weight(self, prefix: str, weight: np.ndarray) -> str:
        # Per output channel: one scale per filter keeps small filters from losing all their levels.
        amax = np.maximum(np.abs(weight).reshape(weight.shape[0], -1).max(axis=1), 1e-8)
        if self.quant.kind == "int8":
            code_max = 127.0
            codes = np.clip(np.round(weight / (amax / code_max)[:, None, None, None]), -127, 127).astype(np.int8)
        else:
            import ml_dtypes

            code_max = FP8_E4M3_MAX
            ratio = np.clip(weight / (amax / code_max)[:, None, None, None], -code_max, code_max)
            codes = ratio.astype(ml_dtypes.float8_e4m3fn)
        scale = self.constant(f"{prefix}.weight_scale", (amax / code_max).astype(self.np_float))
        zero_name = f"{prefix}.weight_zero"
        self.initializers.append(self.onnx.helper.make_tensor(zero_name, self._code_type(), [weight.shape[0]],
                                                              [0] * weight.shape[0]))
        codes_name = self.constant(f"{prefix}.weight_codes", codes)
        return self.node("DequantizeLinear", [codes_name, scale, zero_name], f"{prefix}.weight_dq", axis=0)


def _numpy_dtype(precision: str):
    if precision == "bf16":
        import ml_dtypes

        return ml_dtypes.bfloat16
    return {"fp32": np.float32, "fp16": np.float16}[precision]


def _unshuffle(g: _GraphWriter, x: str, name: str, factor: int, channels: int) -> str:
    """PixelUnshuffle of [N, channels, H, W]: ONNX's SpaceToDepth puts input channel c of block offset (i, j)
    at (i·f + j)·C + c, torch at c·f² + i·f + j, so a Gather over channels reorders its result."""
    y = g.node("SpaceToDepth", [x], f"{name}.blocks", blocksize=factor)
    blocks = factor * factor
    order = np.array([(k % blocks) * channels + k // blocks for k in range(channels * blocks)], np.int64)
    return g.node("Gather", [y, g.constant(f"{name}.order", order)], name, axis=1)


def _prologue(g: _GraphWriter, outputs: dict[str, str], conv: Conv) -> str:
    """The conv's input: Concat of its sources, the unshuffle, the nearest upsampling (as
    ``srgan_fast.reference.ops.conv_prologue``)."""
    x = outputs[conv.inputs[0]]
    if len(conv.inputs) > 1:
        x = g.node("Concat", [outputs[name] for name in conv.inputs], f"{conv.name}.concat", axis=1)
    if conv.unshuffle > 1:
        x = _unshuffle(g, x, f"{conv.name}.unshuffle", conv.unshuffle, conv.in_channels // conv.unshuffle**2)
    if conv.upsample > 1:
        scales = g.constant(f"{conv.name}.upsample_scales",
                            np.array([1, 1, conv.upsample, conv.upsample], np.float32))
        x = g.node("Resize", [x, "", scales], f"{conv.name}.upsample", mode="nearest",
                   coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    return x


def _pad_to_even(g: _GraphWriter, x: str) -> str:
    """As ``srgan_fast.reference.ops.pad_to_multiple`` with multiple 2: per axis of length n, Concat the rows
    [max(n-2, 0), max(n-2, 0) + n mod 2), which is the mirrored row, the row itself where n is 1, or none."""
    shape = g.node("Shape", [x], "image.shape")
    two, zero = g.constant("pad.two", np.array([2], np.int64)), g.constant("pad.zero", np.array([0], np.int64))
    for axis in (2, 3):
        size = g.node("Gather", [shape, g.constant(f"pad.{axis}.axis", np.array([axis], np.int64))],
                      f"pad.{axis}.size")
        start = g.node("Max", [g.node("Sub", [size, two], f"pad.{axis}.last_but_one"), zero], f"pad.{axis}.start")
        stop = g.node("Add", [start, g.node("Mod", [size, two], f"pad.{axis}.odd")], f"pad.{axis}.stop")
        mirrored = g.node("Slice", [x, start, stop, f"pad.{axis}.axis"], f"pad.{axis}.mirrored")
        x = g.node("Concat", [x, mirrored], f"pad.{axis}.padded", axis=axis)
    return x


def _crop(g: _GraphWriter, image: str, y: str, scale: int) -> str:
    """y cut to scale × the unpadded image's sides."""
    sides = g.node("Gather", [g.node("Shape", [image], "crop.image_shape"),
                              g.constant("crop.axes", np.array([2, 3], np.int64))], "crop.sides")
    stop = g.node("Mul", [sides, g.constant("crop.scale", np.array([scale], np.int64))], "crop.stop")
    return g.node("Slice", [y, g.constant("crop.start", np.array([0, 0], np.int64)), stop, "crop.axes"], "crop")


def _generator_body(g: _GraphWriter, x: str) -> str:
    """The network's layers, NCHW in the graph's float precision, in the order of ``srgan_fast.architecture.layers``:
    the prologue, conv + bias, pixel shuffle, activation, the (scaled) residuals; padded and cropped where the
    network needs sides of a multiple (``Network.input_multiple``)."""
    network = g.weights.network
    if network.input_multiple > 2:
        raise ValueError(f"{network.architecture}: the graph pads inputs to even sides only, got a network needing "
                         f"multiples of {network.input_multiple}")
    outputs = {IMAGE: x if network.input_multiple == 1 else _pad_to_even(g, x)}
    for conv in network.layers:
        y = g.conv(_prologue(g, outputs, conv), conv.name)
        if conv.shuffle > 1:
            y = g.node("DepthToSpace", [y], f"{conv.name}.shuffle", blocksize=conv.shuffle, mode="CRD")
        if conv.activation is not None:
            y = g.activation(y, conv)
        for step, residual, scale in (("sum", conv.residual, conv.residual_scale),
                                      ("outer_sum", conv.outer_residual, conv.outer_residual_scale)):
            if residual is None:
                continue
            if scale != 1.0:
                factor = g.constant(f"{conv.name}.{step}_scale", np.array(scale, g.np_float))
                y = g.node("Mul", [y, factor], f"{conv.name}.{step}_scaled")
            y = g.node("Add", [outputs[residual], y], f"{conv.name}.{step}")
        outputs[conv.name] = y
    return y if network.input_multiple == 1 else _crop(g, x, y, network.scale)


def _add_image_skip(g: _GraphWriter, image: str, y: str) -> str:
    """y + the float32 input upsampled as torch's ``interpolate`` does (``srgan_fast.reference.ops.image_skip``).

    nearest: torch takes source pixel floor(dst / scale), ONNX's "asymmetric" transform with "floor".
    bilinear (align_corners=False): source (dst + 0.5) / scale - 0.5, clamped at 0: ONNX "half_pixel" linear
    (onnxruntime clamps the same way; tests compare the borders with torch).
    """
    network = g.weights.network
    if network.image_skip is None:
        return y
    scales = g.constant("image_skip.scales", np.array([1, 1, network.scale, network.scale], np.float32))
    if network.image_skip == "nearest":
        upsampled = g.node("Resize", [image, "", scales], "image_skip.upsampled", mode="nearest",
                           coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    else:
        upsampled = g.node("Resize", [image, "", scales], "image_skip.upsampled", mode="linear",
                           coordinate_transformation_mode="half_pixel")
    return g.node("Add", [y, upsampled], "image_skip.sum")


def build_onnx_model(weights_or_model, *, tile: tuple[int, int] | None = None, batch: int | None = None,
                     precision: str = "fp32", io: str = "float", opset: int | None = None,
                     quant: QuantSpec | None = None, expose: Sequence[str] = ()):
    """The generator as an ``onnx.ModelProto``, checked by ``onnx.checker`` (see the module docstring).

    tile: static (H, W) of the input, or None for dynamic height/width. batch: static N, or None for dynamic.
    expose: conv names whose float input is added as an extra graph output (float32), for calibration.
    opset: None picks ``default_opset``.
    """
    import onnx
    from onnx import TensorProto, helper

    opset = default_opset(precision, quant) if opset is None else opset
    _check_args(tile, batch, precision, io, opset, quant)
    weights = as_weights(weights_or_model)
    g = _GraphWriter(weights, precision, quant, expose)
    n = batch if batch is not None else "batch"
    h, w = tile if tile is not None else ("height", "width")
    scale = weights.network.scale
    out_h, out_w = (scale * h, scale * w) if tile is not None else (f"height_x{scale}", f"width_x{scale}")

    if io == "uint8":
        image = helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, [n, h, w, 3])
        # TensorRT allows nothing but a cast on a uint8 tensor, so cast before the transpose; scale in float32
        # (8-bit levels / 255 are not all exact in fp16) and only then cast to the layers' precision.
        as_float = g.node("Cast", [INPUT_NAME], "image.float", to=TensorProto.FLOAT)
        nchw = g.node("Transpose", [as_float], "image.nchw", perm=[0, 3, 1, 2])
        x = g.node("Div", [nchw, g.constant("full_scale", np.array(255.0, np.float32))], "image.unit")
    else:
        image = helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [n, 3, h, w])
        x = INPUT_NAME
    image_float = x
    if g.float_type != TensorProto.FLOAT:
        x = g.node("Cast", [x], "image.lowp", to=g.float_type)
    y = _generator_body(g, x)
    if g.float_type != TensorProto.FLOAT:
        y = g.node("Cast", [y], "body.float", to=TensorProto.FLOAT)
    y = _add_image_skip(g, image_float, y)
    if io == "uint8":
        clamped = g.node("Clip", [y, g.constant("zero", np.array(0.0, np.float32)),
                                  g.constant("one", np.array(1.0, np.float32))], "upscaled.clamped")
        # Round here: TensorRT's float -> uint8 cast truncates.
        levels = g.node("Round", [g.node("Mul", [clamped, "full_scale"], "upscaled.scaled")], "upscaled.rounded")
        nhwc = g.node("Transpose", [levels], "upscaled.nhwc", perm=[0, 2, 3, 1])
        g.node("Cast", [nhwc], OUTPUT_NAME, to=TensorProto.UINT8)
        output = helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.UINT8, [n, out_h, out_w, 3])
    else:
        g.node("Identity", [y], OUTPUT_NAME)
        output = helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [n, 3, out_h, out_w])

    outputs = [output]
    for conv_name in expose:
        exposed = g.exposed[conv_name]
        if g.float_type != TensorProto.FLOAT:
            exposed = g.node("Cast", [exposed], f"{conv_name}.input_float", to=TensorProto.FLOAT)
        outputs.append(helper.make_tensor_value_info(exposed, TensorProto.FLOAT, [None] * 4))

    graph = helper.make_graph(g.nodes, "srgan_fast_generator", [image], outputs, g.initializers)
    opsets = [helper.make_opsetid("", opset)]
    # The oldest IR version that has this opset: parsers built against older onnx releases (TensorRT's) accept it.
    model = helper.make_model(graph, opset_imports=opsets, producer_name="srgan_fast",
                              ir_version=helper.find_min_ir_version_for(opsets))
    metadata = {"model_name": weights.name, "weights_sha256": weights.sha256, "scale": str(scale), "io": io,
                "precision": quant.kind if quant else precision, "float_precision": precision,
                "architecture": weights.network.architecture,
                "architecture_params": json.dumps(weights.network.params),
                "tile": "dynamic" if tile is None else f"{h}x{w}",
                "batch": "dynamic" if batch is None else str(batch), "format": "srgan_fast.onnx/1"}
    helper.set_model_props(model, metadata)
    onnx.checker.check_model(model, full_check=True)
    return model


def export_onnx(weights_or_model, path: str | os.PathLike, *, tile: tuple[int, int] | None = None,
                batch: int | None = None, precision: str = "fp32", io: str = "float",
                opset: int | None = None) -> Path:
    """Write the generator as a checked ONNX file, atomically (temp file + rename). Returns the path.

    weights_or_model: GeneratorWeights, a model name, a .safetensors path or a srgan_fast network module.
    tile: static (H, W) or None for dynamic H/W; precision: fp32 | fp16 | bf16; io: "float" (NCHW float32)
    or "uint8" (NHWC uint8 with the conversions inside the graph); opset: None for the lowest that works.
    """
    data = build_onnx_model(weights_or_model, tile=tile, batch=batch, precision=precision, io=io,
                            opset=opset).SerializeToString()
    path = Path(path)
    write_bytes_atomically(path, data)
    return path
