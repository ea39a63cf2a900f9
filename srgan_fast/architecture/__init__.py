"""What a network is, without PyTorch: the layer-list description every path derives from, and the
architectures (``srresnet`` in ``paper``, ``msrresnet`` in ``basicsr``, ``srvgg_compact`` in ``realesrgan``,
``rrdbnet`` in ``esrgan``),
each beside the state-dict layouts other projects store it in.

Value ranges are fixed here and only here:
  * network input: RGB in [0, 1] (``INPUT_RANGE``);
  * network output: RGB in [0, 1] (``OUTPUT_RANGE``). The SRGAN paper trains HR targets in [-1, 1]; we keep
    [0, 1] so that input and output share one convention and the I/O conversions of every backend are the
    same scale by 255 (or 65535), without an affine remap.
"""
from srgan_fast.architecture.layers import IMAGE, INPUT_RANGE, OUTPUT_RANGE, Activation, Conv, Network
from srgan_fast.architecture.quantization import int8_convs
from srgan_fast.architecture.zoo import (ARCHITECTURES, SRVGG_ACTIVATIONS, build, msrresnet, rrdbnet, srresnet,
                                         srvgg_compact)

# The integer full scale of each image dtype, which maps onto [0, 1]; float32 is taken as [0, 1] already.
FULL_SCALE = {"uint8": 255.0, "uint16": 65535.0, "float32": 1.0}

__all__ = ["ARCHITECTURES", "FULL_SCALE", "IMAGE", "INPUT_RANGE", "OUTPUT_RANGE", "Activation", "Conv", "Network",
           "SRVGG_ACTIVATIONS", "build", "int8_convs", "msrresnet", "rrdbnet", "srresnet",
           "srvgg_compact"]

