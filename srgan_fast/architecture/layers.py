"""The network description: a plain list of convolutions with their fused prologues and epilogues, nothing else.

Every path reads this and only this: the torch reference module, the ONNX graph, the CPU and CUDA engines
(across the binding, as a list of layer records), the tiler's halo, the FLOP count and the tensor shapes a
weights file must hold. A layer is one convolution and what is fused around it, applied in this order:

    x = concat(source outputs)          one source, or several concatenated channel-wise in order (ESRGAN's
                                        dense connections)
    x = PixelUnshuffle(unshuffle)(x)    optional: channels × unshuffle², resolution / unshuffle (Real-ESRGAN ×2)
    x = nearest ×upsample of x          optional (ESRGAN's upsampling: nearest, then a conv)
    y = conv_k(x) + bias                at x's resolution (``level``, in multiples of the image's; below 1 after
                                        an unshuffle of the image)
    y = PixelShuffle(shuffle)(y)        optional: channels out_channels / shuffle², resolution × shuffle
    y = activation(y)                   optional: PReLU with learned slopes, or a fixed slope (LeakyReLU, ReLU)
    y = residual_scale·y + residual     optional: the output of an earlier layer (same shape); the scale is
                                        ESRGAN's residual scaling (0.2), 1 elsewhere (then a plain y + residual)
    y = outer_residual_scale·y + outer_residual
                                        optional: a second residual enclosing the first (ESRGAN's
                                        residual-in-residual: the dense block's and, around three of them, the
                                        RRDB's), kept as its own step so the two roundings are the network's

Layers run in list order; each reads the image or earlier layers' outputs (``source``). The last layer's
output is the 3-channel image at ``scale`` × the input's resolution, to which ``image_skip`` adds the input
upsampled (nearest or bilinear, as torch's ``interpolate`` with ``align_corners=False``). Values: the input
image in ``INPUT_RANGE``, the output in ``OUTPUT_RANGE`` (unclamped; engines clamp when they store integers).
A network that unshuffles the image needs sides that are multiples of ``input_multiple``: an input of other
sides is first extended at the bottom and right by mirroring (reflect; a 1-pixel side repeats its pixel), and
the output cropped back to scale × the input's sides, as Real-ESRGAN's inference pads for its ×2.

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
    level: int | float        # the conv's resolution in multiples of the image's (1, 2, 4, ...; 0.5 unshuffled)
    # IMAGE, an earlier layer, or several of them whose outputs are concatenated channel-wise in this order.
    source: str | tuple[str, ...] = IMAGE
    shuffle: int = 1          # PixelShuffle factor after the bias
    activation: Activation | None = None
    residual: str | None = None  # name of an earlier layer whose output is added last
    batch_norm: str | None = None  # training only: the BatchNorm2d after the conv, folded for inference
    unshuffle: int = 1        # PixelUnshuffle factor of the input, before the conv
    upsample: int = 1         # nearest-neighbour upsampling factor of the input, before the conv
    residual_scale: float = 1.0
    outer_residual: str | None = None
    outer_residual_scale: float = 1.0

    @property
    def inputs(self) -> tuple[str, ...]:
        """The names whose outputs the conv reads, concatenated in this order."""
        return self.source if isinstance(self.source, tuple) else (self.source,)

    @property
    def reads(self) -> tuple[str, ...]:
        """Every name the layer reads: its inputs, then its residuals."""
        return self.inputs + tuple(r for r in (self.residual, self.outer_residual) if r is not None)

    @property
    def source_level(self) -> int | float:
        """The resolution of the outputs it reads, before the unshuffle and the upsampling."""
        level = self.level * self.unshuffle / self.upsample
        return int(level) if level == int(level) else level

    @property
    def has_prologue(self) -> bool:
        """Whether the conv's input is a tensor of its own (concatenated, unshuffled or upsampled)."""
        return len(self.inputs) > 1 or self.unshuffle > 1 or self.upsample > 1

    @property
    def has_epilogue(self) -> bool:
        return (self.shuffle > 1 or self.activation is not None or self.residual is not None
                or self.outer_residual is not None)

    @property
    def result_channels(self) -> int:
        return self.out_channels // (self.shuffle * self.shuffle)

    @property
    def result_level(self) -> int | float:
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
        through it; an unshuffle by f groups f pixels of its source's level, so a pixel at a group's edge sees
        f-1 of them further on one side; nearest upsampling stays inside the source pixel. A concatenation or a
        residual joins paths, so the radius is the longest path to the output.
        """
        reach: dict[str, float] = {IMAGE: 0.0}
        for conv in self.layers:
            radius = max(reach[name] for name in conv.inputs) + (conv.unshuffle - 1) / conv.source_level
            radius += (conv.kernel - 1) / (2 * conv.level)
            reach[conv.name] = max(radius, *(reach[name] for name in conv.reads))
        return max(reach[self.layers[-1].name], IMAGE_SKIP_RADIUS[self.image_skip])

    def last_readers(self) -> dict[str, int]:
        """Name (IMAGE or a layer) -> index of the last layer that reads it as an input or residual; a layer
        nobody reads (the last) is absent."""
        last_reader: dict[str, int] = {}
        for index, conv in enumerate(self.layers):
            for name in conv.reads:
                last_reader[name] = index
        return last_reader

    def peak_activation_values_per_input_pixel(self) -> float:
        """The most feature-map values alive at once, per pixel of the input image, when the layers run in
        order and each output is freed after its last reader (as the torch reference and onnxruntime do).

        While a layer runs, the live set is the image, every earlier output still to be read (its own inputs
        among them), its prologue's tensor (the concatenated, unshuffled or upsampled input, held until the
        layer is done) and its conv result; the epilogue's steps (shuffle, activation, residual scaling and
        adds) each make a new tensor of that size from the previous one, so two of them exist at once. The
        image skip at the end holds the last output, the upsampled image and their sum.
        """
        values = {IMAGE: 3.0}  # name -> values per input pixel
        last_reader = self.last_readers()
        peak = 0.0
        for index, conv in enumerate(self.layers):
            live = sum(v for name, v in values.items() if name == IMAGE or last_reader.get(name, -1) >= index)
            prologue = conv.in_channels * conv.level**2 if conv.has_prologue else 0.0
            result = conv.out_channels * conv.level**2
            peak = max(peak, live + prologue + (2 if conv.has_epilogue else 1) * result)
            values[conv.name] = float(result)
        if self.image_skip is not None:
            peak = max(peak, values[IMAGE] + 3 * values[self.layers[-1].name])
        return peak

    def flops_per_input_pixel(self) -> float:
        """2 × multiply-adds of every conv, per input pixel (the usual convention for GFLOP/s)."""
        return 2.0 * sum(conv.multiply_adds_per_input_pixel() for conv in self.layers)

    @property
    def input_multiple(self) -> int:
        """The image pixels along a side that one pixel of the coarsest layer covers (2 where the image is
        unshuffled by 2, else 1): the input's sides are padded to multiples of it (see the module docstring)."""
        coarsest = min(conv.level for conv in self.layers)
        return round(1 / coarsest) if coarsest < 1 else 1

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
            if isinstance(raw.get("source"), list):  # JSON has no tuples
                raw["source"] = tuple(raw["source"])
            layers.append(Conv(**raw))
        return cls(data["architecture"], dict(data["params"]), int(data["scale"]), tuple(layers),
                   data.get("image_skip"))


def check(network: Network) -> None:
    """Shapes and wiring: each source/residual exists earlier with the right shape; the output is RGB × scale."""
    if not network.layers:
        raise ValueError("a network needs at least one layer")
    if network.image_skip not in IMAGE_SKIPS:
        raise ValueError(f"image_skip must be one of {IMAGE_SKIPS}, got {network.image_skip!r}")
    shapes: dict[str, tuple[int, int | float]] = {IMAGE: (3, 1)}  # name -> (channels, level) of its output
    for conv in network.layers:
        where = f"layer {conv.name!r}"
        if conv.name in shapes:
            raise ValueError(f"{where}: the name is used twice")
        missing = [name for name in conv.inputs if name not in shapes]
        if missing or not conv.inputs:
            raise ValueError(f"{where}: source {conv.source!r} is not one or more earlier layers")
        if min(conv.unshuffle, conv.upsample) < 1:
            raise ValueError(f"{where}: unshuffle and upsample must be >= 1, got {conv.unshuffle}, {conv.upsample}")
        read = [shapes[name] for name in conv.inputs]
        given = (sum(channels for channels, _ in read) * conv.unshuffle**2, conv.source_level)
        if any(level != conv.source_level for _, level in read) or given[0] != conv.in_channels:
            raise ValueError(f"{where}: reads {conv.in_channels} channels at level {conv.level}, its source "
                             f"{conv.source!r} gives {read} (unshuffled by {conv.unshuffle}, upsampled by "
                             f"{conv.upsample})")
        if conv.kernel % 2 != 1 or conv.kernel < 1:
            raise ValueError(f"{where}: kernel size must be odd, got {conv.kernel}")
        if conv.shuffle < 1 or conv.out_channels % (conv.shuffle * conv.shuffle):
            raise ValueError(f"{where}: {conv.out_channels} channels cannot be pixel-shuffled by {conv.shuffle}")
        result = (conv.result_channels, conv.result_level)
        for residual in (conv.residual, conv.outer_residual):
            if residual is not None and shapes.get(residual) != result:
                raise ValueError(f"{where}: residual {residual!r} is not an earlier layer of shape {result}")
        if conv.outer_residual is not None and conv.residual is None:
            raise ValueError(f"{where}: an outer residual encloses a residual, and it has none")
        shapes[conv.name] = result
    if shapes[network.layers[-1].name] != (3, network.scale):
        raise ValueError(f"the last layer must give 3 channels at level {network.scale}, "
                         f"got {shapes[network.layers[-1].name]}")
