"""``srgan-fast serve``: an HTTP service and web page over one or more loaded models (``pip install 'srgan_fast[serve]'``).

``create_app(...)`` builds the FastAPI app (to run with uvicorn or mount in another app); requests are cut into
windows by the tiler and batched across requests by ``scheduler.TileScheduler``.
"""
from __future__ import annotations


def create_app(*args, **kwargs):
    """See ``srgan_fast.serve.app.create_app``; imported on use, so that the package imports without the extra."""
    from srgan_fast.serve.app import create_app as build

    return build(*args, **kwargs)


__all__ = ["create_app"]
