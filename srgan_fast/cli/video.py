"""``srgan-fast video IN -o OUT``: the command-line face of ``upscale_video``."""
from __future__ import annotations

import argparse
import logging
import os
import sys

from srgan_fast.cli.common import USER_ERRORS, add_upscaler_options, make_upscaler, summary_line
from srgan_fast.io.signals import report_stop
from srgan_fast.cli.ray import register_video_ray_options, run_video_on_ray
from srgan_fast.video.encode import ENCODERS


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _bitrate(text: str) -> int:
    """'8M', '2500k' or '800000' -> bits per second."""
    units = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}
    try:
        if text[-1:].lower() in units:
            return int(float(text[:-1]) * units[text[-1].lower()])
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a bitrate such as 8M, 2500k or 800000, got {text!r}") from None


def _whole_number(least: int):
    """An argparse type for a whole number of at least ``least`` (frame numbers, counts, crf)."""
    def parse(text: str) -> int:
        if text.strip().isdigit() and int(text) >= least:
            return int(text)
        what = "a whole number of 0 or more" if least == 0 else f"a whole number of {least} or more"
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    parse.__name__ = "whole number"
    return parse


def _usage_refusal(args: argparse.Namespace) -> str | None:
    """What the options ask that cannot be done, in the command's own names, before any file is opened."""
    if args.end_frame is not None and args.end_frame <= args.start_frame:
        return (f"--end-frame {args.end_frame} must be above --start-frame {args.start_frame} (it is the frame to "
                "stop before)")
    return None


def register(subparsers) -> None:
    parser = subparsers.add_parser("video", help="upscale a video ×4, keeping its timing, audio and subtitles",
                                   description="Decode, upscale every frame ×4 and encode; audio and subtitle "
                                               "streams are copied unchanged.")
    parser.add_argument("input", help="video file")
    parser.add_argument("-o", "--output", required=True, help="output video; the extension picks the container")
    parser.add_argument("--codec", default="h264", choices=list(ENCODERS), metavar="CODEC",
                        help=f"one of {', '.join(ENCODERS)} (default: %(default)s)")
    quality = parser.add_mutually_exclusive_group()
    quality.add_argument("--crf", type=_whole_number(0), help="constant quality, lower is better (default per codec)")
    quality.add_argument("--bitrate", type=_bitrate, help="average bitrate, e.g. 8M")
    parser.add_argument("--pix-fmt", help="e.g. yuv420p (8-bit) or yuv420p10le (10-bit); default: as the input")
    parser.add_argument("--encoder-option", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                        help="FFmpeg encoder option, e.g. preset=slow (repeatable)")
    parser.add_argument("--start-frame", type=_whole_number(0), default=0, help="first frame to upscale (default: 0)")
    parser.add_argument("--end-frame", type=_whole_number(1), help="frame to stop before (default: the end)")
    parser.add_argument("--batch-size", type=_whole_number(1),
                        help="frames per upscale call (default: from frame size)")
    parser.add_argument("--on-corrupt", choices=["skip", "stop"], default="skip",
                        help="damaged frames: skip with a warning, or stop with an error (default: %(default)s)")
    parser.add_argument("--no-audio", action="store_true", help="leave the audio streams out")
    parser.add_argument("--no-subtitles", action="store_true", help="leave the subtitle streams out")
    parser.add_argument("--overwrite", action="store_true", help="replace the output if it exists")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_upscaler_options(parser)
    register_video_ray_options(parser)
    parser.set_defaults(func=run_video)


def run_video(args: argparse.Namespace) -> int:
    """0 when written, 1 when the run failed (the output exists, the input cannot be read...), 2 for a usage error."""
    refusal = _usage_refusal(args)
    if refusal:
        print(f"srgan-fast video: error: {refusal} (see srgan-fast video --help)", file=sys.stderr)
        return 2
    if os.path.lexists(args.output) and not args.overwrite:  # said here in the command's words, not the API's
        print(f"error: {args.output}: exists (pass --overwrite to replace it)", file=sys.stderr)
        return 1
    if args.ray is not None:
        return run_video_on_ray(args)
    from srgan_fast.video.pipeline import upscale_video
    from srgan_fast.video.probe import VideoError

    logging.basicConfig(format="warning: %(message)s", level=logging.WARNING)
    try:
        # Made before the video is read, as the upscale command makes it: a model, backend or device that
        # cannot be had is a usage error there and here.
        upscaler = make_upscaler(args)
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        result = upscale_video(
            args.input, args.output, upscaler=upscaler, codec=args.codec, crf=args.crf, bitrate=args.bitrate,
            pix_fmt=args.pix_fmt, encoder_options=dict(args.encoder_option), start_frame=args.start_frame,
            end_frame=args.end_frame, batch_size=args.batch_size, on_corrupt=args.on_corrupt,
            copy_audio=not args.no_audio, copy_subtitles=not args.no_subtitles, overwrite=args.overwrite,
            progress=not args.no_progress, outscale=args.outscale, width=args.width, height=args.height)
    except (VideoError, *USER_ERRORS) as exc:
        # The one refusal the pipeline can only make once it has read the video names the API's argument.
        print(f"error: {' '.join(str(exc).split()).replace('start_frame=', '--start-frame ')}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as interrupt:
        return report_stop(interrupt, f"{args.output} not written, no partial file left")
    skipped = f", {result.corrupt_skipped} corrupt skipped" if result.corrupt_skipped else ""
    print(summary_line(result, skipped), file=sys.stderr)
    return 0
