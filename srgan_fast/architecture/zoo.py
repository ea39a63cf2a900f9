"""The architectures by name, and every state-dict layout they read, in the order detection tries them.

Layer names are the tensor names of each project's own state dicts (ours for ``srresnet``, BasicSR's for
``msrresnet`` and ``rrdbnet``, Real-ESRGAN's for ``srvgg_compact``), so their checkpoints load without renaming.
"""
from __future__ import annotations

from srgan_fast.architecture import basicsr, esrgan, paper, realesrgan
from srgan_fast.architecture.basicsr import msrresnet
from srgan_fast.architecture.esrgan import rrdbnet
from srgan_fast.architecture.layers import Network
from srgan_fast.architecture.paper import srresnet
from srgan_fast.architecture.realesrgan import SRVGG_ACTIVATIONS, srvgg_compact

ARCHITECTURES = {"srresnet": srresnet, "msrresnet": msrresnet, "srvgg_compact": srvgg_compact, "rrdbnet": rrdbnet}
# Each architecture's module holds its description and the layouts other projects store it in (spandrel's way).
LAYOUTS = paper.LAYOUTS + basicsr.LAYOUTS + realesrgan.LAYOUTS + esrgan.LAYOUTS
REFUSED_LAYOUTS = paper.REFUSED_LAYOUTS

__all__ = ["ARCHITECTURES", "LAYOUTS", "REFUSED_LAYOUTS", "SRVGG_ACTIVATIONS", "build", "msrresnet", "rrdbnet",
           "srresnet", "srvgg_compact"]


def build(architecture: str, params: dict) -> Network:
    """The description of a named architecture with these parameters (as recorded in weights files)."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}: expected one of {', '.join(ARCHITECTURES)}")
    try:
        return ARCHITECTURES[architecture](**params)
    except TypeError as exc:
        raise ValueError(f"{architecture}: bad parameters {params} ({exc})") from None
