"""Which convs run on 8-bit codes: one policy for every engine that quantizes (the native engine's int8,
TensorRT's int8 and fp8 through the ONNX graph's Quantize/DequantizeLinear pairs).

Quantizing a conv's input adds up to half a code step of noise to it. Inside the residual trunk later layers
average that noise away; the convs below pass it on to the pixels, and stay in floating point. Measured with
the native engine's u8 codes (``benchmarks/int8_quality.py``, the banding check): these few layers alone banded
a smooth 16-bit gradient by up to 5 levels of 8 bits.

  * the first and last convs: they read and write the image itself;
  * the conv reading the first conv's output, and the one adding that output back across the trunk (the long
    skip carries the image's low frequencies);
  * the upsampling convs (a pixel shuffle, a nearest upsampling, or a level above the first conv's, which is
    below 1 where the input is unshuffled): no later layer averages their noise.

A conv reading a concatenation (ESRGAN's dense blocks) reads the first conv's output when any of its inputs is it.

TensorRT's codes are no finer (127 levels a side, symmetric, entropy-clipped), so the same convs stay float there.
"""
from __future__ import annotations

from srgan_fast.architecture.layers import Conv, Network


def int8_convs(network: Network) -> list[str]:
    """Names of the convs whose input is quantized, in layer order (see the module docstring for the others)."""
    layers = network.layers
    by_name = {conv.name: conv for conv in layers}
    first, trunk = layers[0].name, layers[0].result_level

    def long_skip(conv: Conv) -> bool:
        return conv.residual == first and all(first not in by_name[name].inputs for name in conv.inputs)

    return [conv.name for conv in layers[1:-1]
            if conv.shuffle == 1 and conv.upsample == 1 and conv.level == trunk and first not in conv.inputs
            and not long_skip(conv)]
