"""HDR10 static metadata: read from the decoded input, written through the encoders that can take it.

The picture itself needs nothing special: 10- and 12-bit frames reach the upscaler as 16-bit RGB and come back
at the output's depth, and the colour tags (primaries, transfer such as PQ = smpte2084 or HLG = arib-std-b67,
matrix, range) are copied to the output stream and frames (``encode.FrameLook``). The model runs on the values
as coded: PQ and HLG pictures are upscaled in their transfer domain, not in linear light, as other upscalers do.

The mastering display colour volume and the content light level are another matter. What PyAV 18.1 (FFmpeg 8.1)
allows decides how they travel:

- Reading works: decoded frames carry them as side data (AV_FRAME_DATA_MASTERING_DISPLAY_METADATA and
  AV_FRAME_DATA_CONTENT_LIGHT_LEVEL), whether the input had them in its bitstream (HEVC/H.264 SEI, AV1
  metadata OBUs) or in its container, whose stream side data FFmpeg attaches to every frame (the display
  matrix arrives the same way). The first kept frame's are taken: the metadata is static.
- Writing side data does not: PyAV's frame side data is read-only, an output stream takes only a display
  matrix as side data, and the encoder's ``decoded_side_data`` is not exposed. So the container's own HDR
  fields (MP4 mdcv/clli boxes, Matroska MasteringMetadata) stay empty.
- The route left is the encoders' own options, which put the metadata into the bitstream, where decoders and
  players read it: libx265 ``x265-params master-display=G(x,y)B(x,y)R(x,y)WP(x,y)L(max,min):max-cll=CLL,FALL``
  and libx264 ``x264-params mastering-display=...:cll=...`` (SEI; chromaticities in 1/50000, luminance in
  1/10000 cd/m², so values on that grid survive exactly), libsvtav1 ``svtav1-params
  mastering-display=...:content-light=...`` (decimal values; AV1 stores chromaticities in 1/65536 and the
  luminances in 1/256 (max) and 1/16384 (min) cd/m², so they come back rounded to those steps).
- ffv1 and the NVENC encoders have no such option: their output keeps the HDR colour tags but not this
  metadata, and ``hdr_encoder_options`` returns the one warning line that says so. HDR10+, HDR Vivid and Dolby
  Vision dynamic metadata are never carried (same line).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from fractions import Fraction

from srgan_fast.video.probe import require_av

Chromaticity = tuple[Fraction, Fraction]  # CIE 1931 (x, y)

# AVMasteringDisplayMetadata: 3 primaries (R, G, B) and the white point as (x, y) AVRationals, the min and max
# luminance as AVRationals, then has_primaries and has_luminance.
_MASTERING_LAYOUT = struct.Struct("<20i2i")
_LIGHT_LAYOUT = struct.Struct("<2I")  # AVContentLightMetadata: MaxCLL, MaxFALL
# Frame side data that changes from frame to frame and that no encoder here takes.
_DYNAMIC_KINDS = {"DYNAMIC_HDR_PLUS": "HDR10+ dynamic metadata", "DYNAMIC_HDR_VIVID": "HDR Vivid dynamic metadata",
                  "DOVI_METADATA": "Dolby Vision metadata", "DOVI_RPU_BUFFER": "Dolby Vision metadata"}


@dataclass(frozen=True)
class MasteringDisplay:
    """The display the content was graded on; either half may be missing from an input."""

    primaries: tuple[Chromaticity, Chromaticity, Chromaticity] | None  # red, green, blue
    white_point: Chromaticity | None
    luminance: tuple[Fraction, Fraction] | None  # (min, max) in cd/m²

    @classmethod
    def from_side_data(cls, data: bytes) -> MasteringDisplay:
        values = _MASTERING_LAYOUT.unpack_from(data)
        has_primaries, has_luminance = values[20:]
        ratios = [Fraction(values[i], values[i + 1]) if values[i + 1] else Fraction(0) for i in range(0, 20, 2)]
        primaries = ((ratios[0], ratios[1]), (ratios[2], ratios[3]), (ratios[4], ratios[5]))
        return cls(primaries if has_primaries else None, (ratios[6], ratios[7]) if has_primaries else None,
                   (ratios[8], ratios[9]) if has_luminance else None)

    def option_value(self, decimal: bool) -> str:
        """G(x,y)B(x,y)R(x,y)WP(x,y)L(max,min), as x264/x265 (integer units) or SVT-AV1 (decimals) read it."""
        def chroma(value: Fraction) -> str:
            return f"{float(value):.5f}" if decimal else str(round(value * 50000))

        def light(value: Fraction) -> str:
            return f"{float(value):.4f}" if decimal else str(round(value * 10000))

        (red, green, blue), white, (low, high) = self.primaries, self.white_point, self.luminance
        points = "".join(f"{name}({chroma(x)},{chroma(y)})"
                         for name, (x, y) in (("G", green), ("B", blue), ("R", red), ("WP", white)))
        return f"{points}L({light(high)},{light(low)})"


@dataclass(frozen=True)
class ContentLight:
    max_cll: int  # brightest pixel of the whole video, cd/m²
    max_fall: int  # brightest frame average, cd/m²


@dataclass(frozen=True)
class HdrMetadata:
    """The HDR metadata of the input's first kept frame."""

    mastering: MasteringDisplay | None = None
    content_light: ContentLight | None = None
    dynamic: tuple[str, ...] = ()  # kinds of dynamic metadata present, e.g. "HDR10+ dynamic metadata"

    @classmethod
    def of(cls, frame) -> HdrMetadata:
        mastering = light = None
        dynamic = []
        for side in _side_data_entries(frame):
            kind = side.type.name
            if kind == "MASTERING_DISPLAY_METADATA":
                mastering = MasteringDisplay.from_side_data(bytes(side))
            elif kind == "CONTENT_LIGHT_LEVEL":
                light = ContentLight(*_LIGHT_LAYOUT.unpack_from(bytes(side)))
            elif kind in _DYNAMIC_KINDS and _DYNAMIC_KINDS[kind] not in dynamic:
                dynamic.append(_DYNAMIC_KINDS[kind])
        return cls(mastering, light, tuple(dynamic))


def _side_data_entries(frame):
    """A frame's side data entries: PyAV 18 iterates the container's types (a mapping), earlier
    releases its entries."""
    container = frame.side_data
    for item in container:
        yield item if hasattr(item, "type") else container[item]


@dataclass(frozen=True)
class HdrRoute:
    """How one encoder takes HDR10 metadata: keys of its key=value list option."""

    option: str
    mastering_key: str
    light_key: str
    decimal: bool  # values as decimals (SVT-AV1) instead of x264/x265's integer units


HDR_ROUTES = {
    "libx265": HdrRoute("x265-params", "master-display", "max-cll", decimal=False),
    "libx264": HdrRoute("x264-params", "mastering-display", "cll", decimal=False),
    "libsvtav1": HdrRoute("svtav1-params", "mastering-display", "content-light", decimal=True),
}


def hdr_encoder_options(encoder: str, hdr: HdrMetadata) -> tuple[dict[str, str], str | None]:
    """The options that make ``encoder`` write ``hdr`` into its bitstream, and one warning line naming what of
    ``hdr`` cannot be carried and why (None when everything is)."""
    route = HDR_ROUTES.get(encoder)
    static = [name for name, present in (("mastering display", hdr.mastering), ("content light level",
                                                                                hdr.content_light)) if present]
    dropped = []
    params = []
    if static and route is None:
        av = require_av()
        dropped.append(f"{' and '.join(static)} ({encoder} has no option for them and PyAV {av.__version__} "
                       f"cannot attach frame or stream side data; codec h265, h264 or av1 carries them)")
    elif route is not None:
        mastering = hdr.mastering
        if mastering is not None and (mastering.primaries is None or mastering.luminance is None):
            missing = "primaries" if mastering.primaries is None else "luminance"
            dropped.append(f"mastering display (the input's has no {missing}, and {encoder} needs both)")
        elif mastering is not None:
            params.append(f"{route.mastering_key}={mastering.option_value(route.decimal)}")
        if hdr.content_light is not None:
            params.append(f"{route.light_key}={hdr.content_light.max_cll},{hdr.content_light.max_fall}")
    if hdr.dynamic:
        dropped.append(f"{' and '.join(hdr.dynamic)} (only static HDR10 metadata is carried)")
    options = {route.option: ":".join(params)} if params else {}
    note = f"HDR metadata of the input dropped: {'; '.join(dropped)}" if dropped else None
    return options, note
