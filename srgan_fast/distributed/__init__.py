"""srgan_fast on a Ray cluster (the ``ray`` extra): ``upscale_files`` for folders and buckets of images,
``upscale_video`` for a long video in segments.

Imported lazily, so that the command line can offer ``--ray`` where Ray (and pyarrow) are not installed; the
options and the runs from parsed arguments are in ``srgan_fast.cli.ray``.
"""
from __future__ import annotations

import importlib

_EXPORTS = {"upscale_files": "images", "RunSummary": "report", "FileResult": "report", "upscale_video": "video",
            "SegmentedVideoResult": "video"}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
