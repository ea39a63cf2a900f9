"""Video upscaling with PyAV (FFmpeg): ``upscale_video(src, dst)`` (its command line is
``srgan_fast.cli.video``).

PyAV is an optional dependency (``pip install 'srgan_fast[video]'``); it is imported on first use, so that
``srgan_fast`` and its command line work without it.
"""
from srgan_fast.video.encode import ENCODERS, available_codecs
from srgan_fast.video.pipeline import VideoResult, upscale_video
from srgan_fast.video.probe import VideoError

__all__ = ["upscale_video", "VideoResult", "VideoError", "ENCODERS", "available_codecs"]
