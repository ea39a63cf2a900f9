"""``srgan-fast upscale ... --ray [ADDRESS]``: the options of a run on Ray, and the run from parsed arguments."""
from __future__ import annotations

import argparse
import sys

from srgan_fast.cli.common import summary_line
from srgan_fast.io.signals import report_stop
from srgan_fast.io.images import one_line


def _positive_int(text: str) -> int:
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")


def _gpu_share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1
    if value >= 0:
        return value
    raise argparse.ArgumentTypeError(f"expected a number of GPUs of 0 or more (0.5 shares one GPU between two "
                                     f"workers), got {text!r}")


def _ray_group(parser: argparse.ArgumentParser, what: str, workers: str,
               alone: str = "a local one") -> argparse._ArgumentGroup:
    """The options every command on Ray has: ``--ray [ADDRESS]`` and the workers'."""
    group = parser.add_argument_group("many machines (Ray; pip install 'srgan_fast[ray]')")
    group.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                       help=f"{what}: ADDRESS (auto, ray://head:10001, or local: a Ray instance on this machine "
                            f"for this run), or alone: the one RAY_ADDRESS names, else {alone}")
    group.add_argument("--workers", type=_positive_int, help=f"actors, each with its own model (default: {workers})")
    group.add_argument("--gpus-per-worker", type=_gpu_share, default=0.0, metavar="GPUS",
                       help="GPUs each worker reserves, e.g. 1 or 0.5 (default: 0, CPU workers)")
    group.add_argument("--threads-per-worker", type=_positive_int, metavar="N",
                       help="CPUs each CPU worker reserves and its native threads (default: 1)")
    return group


def register_ray_options(parser: argparse.ArgumentParser) -> None:
    """``--ray [ADDRESS]`` and the options that only a run on Ray has, as a group of the upscale command."""
    group = _ray_group(parser, "run on a Ray cluster, inputs and outputs may be s3://, gs://, ... URIs",
                       "as many as the cluster's free CPUs hold, --threads-per-worker each, or its GPUs with "
                       "--gpus-per-worker; at most one per batch",
                       alone="no Ray: without worker options the files run in this process (Ray on this machine "
                       "alone would add its start-up and no cores; a note says so)")
    group.add_argument("--files-per-batch", type=_positive_int, default=1, metavar="N",
                       help="files per Ray task; a worker that dies redoes its batch (default: %(default)s)")
    group.add_argument("--report", metavar="PATH", help="JSON-lines report, one line per file (default: "
                       ".srgan-fast-report.jsonl in the output folder)")
    group.add_argument("--no-resume", dest="resume", action="store_false",
                       help="report existing outputs as failed instead of skipping them as done")


def run_upscale_on_ray(args: argparse.Namespace) -> int:
    """The upscale command on Ray: 0 when every file is done or skipped, 1 when any failed, 2 for a usage error."""
    try:
        if getattr(args, "device", None):
            raise ValueError(f"--device {args.device} does not apply with --ray: workers run on GPUs with "
                             "--gpus-per-worker and on CPUs without it")
        # Ray itself is imported where the run uses it: a run in this process (no cluster) does without.
        from srgan_fast.distributed.cluster import RayMissing
        from srgan_fast.distributed.images import upscale_files
        from srgan_fast.distributed.report import FAILED
    except ImportError as exc:
        print(f"error: --ray needs Ray Data ({exc}); install it with pip install 'srgan_fast[ray]'", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        summary = upscale_files(
            args.inputs, args.output, address=args.ray or None, model=args.model, backend=args.backend,
            precision=args.precision, tile=args.tile, memory_budget=getattr(args, "memory_budget", None),
            output_format=args.format, workers=args.workers, gpus_per_worker=args.gpus_per_worker,
            threads_per_worker=args.threads_per_worker, files_per_batch=args.files_per_batch,
            overwrite=args.overwrite, resume=args.resume, report=args.report, max_pixels=args.max_pixels,
            tta=args.tta, outscale=args.outscale, width=args.width, height=args.height, name=args.name,
            quality=args.quality, background=args.background, calibration_images=args.calibration_images,
            quiet=args.quiet)
    except RayMissing as exc:  # the run needs Ray, which is not installed
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:  # the inputs or output as given cannot be used (or collide)
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        return report_stop(interrupt, "the outputs written are complete, no partial files left; run it again to "
                           "finish")
    except Exception as exc:
        ray = sys.modules.get("ray")
        if ray is None or not isinstance(exc, ray.exceptions.RayError):
            raise
        # The workers could not start (their first line says why).
        print(f"error: the run on Ray failed: {str(exc).strip().splitlines()[0]}", file=sys.stderr)
        return 1
    for line in summary.notes:
        print(f"note: {line}", file=sys.stderr)
    for line in summary.problems:
        print(f"error: {line}", file=sys.stderr)
    for result in summary.results:
        for note in result.warnings:
            print(f"warning: {note}", file=sys.stderr)
        if result.status == FAILED:
            print(f"error: {result.cause}", file=sys.stderr)
    print(summary.line(), file=sys.stderr)
    return 1 if summary.failed or summary.problems else 0


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0
    if value > 0:
        return value
    raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")


def register_video_ray_options(parser: argparse.ArgumentParser) -> None:
    """``--ray [ADDRESS]`` and the options that only a video run on Ray has, as a group of the video command."""
    from srgan_fast.distributed.segments import DEFAULT_SEGMENT_SECONDS

    group = _ray_group(parser, "cut the video at keyframes and upscale the segments on a Ray cluster (input and "
                       "output on a mount every node shares)", "as many as the cluster holds, at most one per segment")
    group.add_argument("--segment-seconds", type=_positive_seconds, default=DEFAULT_SEGMENT_SECONDS, metavar="N",
                       help="segment length: each starts at the first keyframe N seconds or more after the previous "
                            "segment's start (default: %(default)s)")


def run_video_on_ray(args: argparse.Namespace) -> int:
    """The video command on Ray: 0 when written, 1 when the run failed, 2 for a usage error."""
    import logging

    logging.basicConfig(format="warning: %(message)s", level=logging.WARNING)
    if args.device:
        print(f"error: --device {args.device} does not apply with --ray: workers run on GPUs with --gpus-per-worker "
              "and on CPUs without it", file=sys.stderr)
        return 2
    if args.start_frame != 0 or args.end_frame is not None:
        print("error: --start-frame and --end-frame do not apply with --ray: it upscales the whole video",
              file=sys.stderr)
        return 2
    try:
        import ray

        from srgan_fast.backends import BackendUnavailable
        from srgan_fast.tiler.channels import InputError
        from srgan_fast.distributed.video import upscale_video
        from srgan_fast.video.probe import VideoError
        from srgan_fast.weights import WeightsError
    except ImportError as exc:
        print(f"error: --ray needs Ray Data ({exc}); install it with pip install 'srgan_fast[ray]'", file=sys.stderr)
        return 2
    try:
        result = upscale_video(
            args.input, args.output, address=args.ray or None, segment_seconds=args.segment_seconds,
            model=args.model, backend=args.backend, precision=args.precision, tile=args.tile,
            memory_budget=args.memory_budget, tta=args.tta, outscale=args.outscale, width=args.width,
            height=args.height, codec=args.codec, crf=args.crf, bitrate=args.bitrate, pix_fmt=args.pix_fmt,
            encoder_options=dict(args.encoder_option), batch_size=args.batch_size, on_corrupt=args.on_corrupt,
            copy_audio=not args.no_audio, copy_subtitles=not args.no_subtitles, overwrite=args.overwrite,
            workers=args.workers, gpus_per_worker=args.gpus_per_worker, threads_per_worker=args.threads_per_worker,
            progress=not args.no_progress, calibration_images=args.calibration_images)
    except (VideoError, InputError, WeightsError, BackendUnavailable, ValueError, OSError) as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 1
    except ray.exceptions.RayError as exc:  # Ray itself could not start or reach the cluster
        print(f"error: the run on Ray failed: {str(exc).strip().splitlines()[0]}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as interrupt:
        return report_stop(interrupt, f"{args.output} not written, no segment files left")
    print(summary_line(result, f", {result.segments} segments"), file=sys.stderr)
    return 0
