"""The network description: a plain list of convolutions with their fused epilogues, nothing else.

Every path reads this and only this: the torch reference module, the ONNX graph, the CPU and CUDA engines
(across the binding, as a list of layer records), the tiler's halo, the FLOP count and the tensor shapes a
weights file must hold. A layer is one convolution and what is fused behind it, applied in this order:

    y = conv_k(input) + bias            at the input's resolution (``level``, in multiples of the image's)
    y = PixelShuffle(shuffle)(y)        optional: channels out_channels / shuffle², resolution × shuffle
    y = activation(y)                   optional: PReLU with learned slopes, or a fixed slope (LeakyReLU, ReLU)
    y = y + residual                    optional: the output of an earlier layer (same shape)

Layers run in list order; each reads the image or an earlier layer's output (``source``). The last layer's
output is the 3-channel image at ``scale`` × the input's resolution, to which ``image_skip`` adds the input
upsampled (nearest or bilinear, as torch's ``interpolate`` with ``align_corners=False``). Values: the input
image in ``INPUT_RANGE``, the output in ``OUTPUT_RANGE`` (unclamped; engines clamp when they store integers).

Descriptions are plain data: ``to_dict``/``from_dict`` give JSON-ready dictionaries, which weights files
record so that a file says what it holds.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

INPUT_RANGE = (0.0, 1.0)
OUTPUT_RANGE = (0.0, 1.0)
IMAGE = "image"  # the ``source`` of a layer that reads the input image
IMAGE_SKIPS = (None, "nearest", "bilinear")
# How far (in input pixels) one output pixel of each image skip sees: bilinear reads the next input pixel.
IMAGE_SKIP_RADIUS = {None: 0.0, "nearest": 0.0, "bilinear": 1.0}


@dataclass(frozen=True)
class Activation:
    """PReLU with learned per-channel slopes (``slopes_tensor``), or one fixed slope for every channel
    (LeakyReLU: ``slope`` 0.1 or 0.2; ReLU: 0). Exactly one of the two is set."""

    slopes_tensor: str | None = None
    slope: float | None = None

    def __post_init__(self):
        if (self.slopes_tensor is None) == (self.slope is None):
            raise ValueError(f"an activation has learned slopes or a fixed slope, got {self}")


@dataclass(frozen=True)
class Conv:
    name: str                 # tensors "<name>.weight" [out, in, k, k] and "<name>.bias" [out]
    in_channels: int
    out_channels: int         # before the pixel shuffle
    kernel: int               # odd; "same" zero padding
    level: int                # the input's resolution in multiples of the image's (1, 2, 4, ...)
    source: str = IMAGE       # IMAGE or the name of an earlier layer
    shuffle: int = 1          # PixelShuffle factor after the bias
    activation: Activation | None = None
    residual: str | None = None  # name of an earlier layer whose output is added last
    batch_norm: str | None = None  # training only: the BatchNorm2d after the conv, folded for inference

    @property
    def result_channels(self) -> int:
        return self.out_channels // (self.shuffle * self.shuffle)

    @property
    def result_level(self) -> int:
        return self.level * self.shuffle

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes = {f"{self.name}.weight": (self.out_channels, self.in_channels, self.kernel, self.kernel),
                  f"{self.name}.bias": (self.out_channels,)}
        if self.activation is not None and self.activation.slopes_tensor is not None:
            shapes[self.activation.slopes_tensor] = (self.result_channels,)
        return shapes

    def multiply_adds_per_input_pixel(self) -> float:
        """Per pixel of the network's input image, counting this conv at the resolution it runs at."""
        return self.out_channels * self.in_channels * self.kernel**2 * self.level**2


@dataclass(frozen=True)
class Network:
    architecture: str         # the builder's name (``ARCHITECTURES``)
    params: dict = field(hash=False)  # the builder's arguments: Network == builder(**params)
    scale: int
    layers: tuple[Conv, ...]
    image_skip: str | None = None

    def __post_init__(self):
        check(self)

    def layer(self, name: str) -> Conv:
        for conv in self.layers:
            if conv.name == name:
                return conv
        raise KeyError(name)

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every tensor of the folded (inference) network: name -> shape."""
        shapes: dict[str, tuple[int, ...]] = {}
        for conv in self.layers:
            shapes.update(conv.tensor_shapes())
        return shapes

    def receptive_radius(self) -> float:
        """How far (in input pixels) an output pixel sees: the halo a tile needs to equal the untiled result.

        A k×k conv at resolution level L adds (k-1)/2 of its pixels, (k-1)/(2L) input pixels, to the path
        through it; a residual joins two paths, so the radius is the longest path to the output.
        """
        reach: dict[str, float] = {IMAGE: 0.0}
        for conv in self.layers:
            radius = reach[conv.source] + (conv.kernel - 1) / (2 * conv.level)
            if conv.residual is not None:
                radius = max(radius, reach[conv.residual])
            reach[conv.name] = radius
        return max(reach[self.layers[-1].name], IMAGE_SKIP_RADIUS[self.image_skip])

    def last_readers(self) -> dict[str, int]:
        """Name (IMAGE or a layer) -> index of the last layer that reads it as its source or residual; a layer
        nobody reads (the last) is absent."""
        last_reader: dict[str, int] = {}
        for index, conv in enumerate(self.layers):
            last_reader[conv.source] = index
            if conv.residual is not None:
                last_reader[conv.residual] = index
        return last_reader

    def peak_activation_values_per_input_pixel(self) -> float:
        """The most feature-map values alive at once, per pixel of the input image, when the layers run in
        order and each output is freed after its last reader (as the torch reference and onnxruntime do).

        While a layer runs, the live set is the image, every earlier output still to be read (its own inputs
        among them), and its conv result; the epilogue's steps (shuffle, activation, residual add) each make a
        new tensor of that size from the previous one, so two of them exist at once. The image skip at the
        end holds the last output, the upsampled image and their sum.
        """
        values = {IMAGE: 3.0}  # name -> values per input pixel
        last_reader = self.last_readers()
        peak = 0.0
        for index, conv in enumerate(self.layers):
            live = sum(v for name, v in values.items() if name == IMAGE or last_reader.get(name, -1) >= index)
            result = conv.out_channels * conv.level**2
            has_epilogue = conv.shuffle > 1 or conv.activation is not None or conv.residual is not None
            peak = max(peak, live + (2 if has_epilogue else 1) * result)
            values[conv.name] = float(result)
        if self.image_skip is not None:
            peak = max(peak, values[IMAGE] + 3 * values[self.layers[-1].name])
        return peak

    def flops_per_input_pixel(self) -> float:
        """2 × multiply-adds of every conv, per input pixel (the usual convention for GFLOP/s)."""
        return 2.0 * sum(conv.multiply_adds_per_input_pixel() for conv in self.layers)

    @property
    def channels(self) -> int:
        """The widest feature map (for memory estimates and the CUDA kernels' channel rules)."""
        return max(conv.result_channels for conv in self.layers[:-1]) if len(self.layers) > 1 else 3

    def describe(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return (f"{self.architecture}({params}): x{self.scale}, {len(self.layers)} convs, "
                f"{self.flops_per_input_pixel() / 1e6:.2f} MFLOP per input pixel, receptive radius "
                f"{self.receptive_radius():g} px")

    def to_dict(self) -> dict:
        return {"architecture": self.architecture, "params": dict(self.params), "scale": self.scale,
                "image_skip": self.image_skip, "layers": [asdict(conv) for conv in self.layers]}

    @classmethod
    def from_dict(cls, data: dict) -> Network:
        layers = []
        for raw in data["layers"]:
            raw = dict(raw)
            if raw.get("activation") is not None:
                raw["activation"] = Activation(**raw["activation"])
            layers.append(Conv(**raw))
        return cls(data["architecture"], dict(data["params"]), int(data["scale"]), tuple(layers),
                   data.get("image_skip"))


def check(network: Network) -> None:
    """Shapes and wiring: each source/residual exists earlier with the right shape; the output is RGB × scale."""
    if not network.layers:
        raise ValueError("a network needs at least one layer")
    if network.image_skip not in IMAGE_SKIPS:
        raise ValueError(f"image_skip must be one of {IMAGE_SKIPS}, got {network.image_skip!r}")
    shapes: dict[str, tuple[int, int]] = {IMAGE: (3, 1)}  # name -> (channels, level) of its output
    for conv in network.layers:
        where = f"layer {conv.name!r}"
        if conv.name in shapes:
            raise ValueError(f"{where}: the name is used twice")
        if conv.source not in shapes:
            raise ValueError(f"{where}: source {conv.source!r} is not an earlier layer")
        if shapes[conv.source] != (conv.in_channels, conv.level):
            raise ValueError(f"{where}: reads {conv.in_channels} channels at level {conv.level}, its source "
                             f"{conv.source!r} gives {shapes[conv.source]}")
        if conv.kernel % 2 != 1 or conv.kernel < 1:
            raise ValueError(f"{where}: kernel size must be odd, got {conv.kernel}")
        if conv.shuffle < 1 or conv.out_channels % (conv.shuffle * conv.shuffle):
            raise ValueError(f"{where}: {conv.out_channels} channels cannot be pixel-shuffled by {conv.shuffle}")
        result = (conv.result_channels, conv.result_level)
        if conv.residual is not None and shapes.get(conv.residual) != result:
            raise ValueError(f"{where}: residual {conv.residual!r} is not an earlier layer of shape {result}")
        shapes[conv.name] = result
    if shapes[network.layers[-1].name] != (3, network.scale):
        raise ValueError(f"the last layer must give 3 channels at level {network.scale}, "
                         f"got {shapes[network.layers[-1].name]}")
