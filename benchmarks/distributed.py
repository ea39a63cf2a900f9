"""Images/s and video on Ray against one machine, in one run: the same folder, and the same video, upscaled
locally and with 1 and 2 workers.

    python benchmarks/distributed.py [--count 4] [--size 1080x1920] [--model srgan] [--json out.json]
    python benchmarks/distributed.py --address auto --workers 1 2 4 8 --gpus-per-worker 1   # on a GPU cluster

The folder is generated (``--count`` photo-like random images of ``--size``). Rows: the local run through the
same per-file code the CLI uses, with the native engine on one thread (the yardstick for one worker) and on
every core (the CLI's default); then ``upscale_files`` with N workers, one native thread each. The Ray overhead
per image is (time with 1 worker − local time on one thread) / images: listing, scheduling, moving results.
The video (``--video-frames`` frames of ``--video-size``, a keyframe every ``--gop`` frames, cut into segments of
one GOP) likewise, locally on one thread and on Ray; its overhead per segment is (time with 1 worker − local
time) / segments: the cut, each segment's decoder and encoder start, the join. Without ``--address`` a local
Ray instance with as many CPUs as this machine is started for the run.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from srgan_fast.api import Upscaler  # noqa: E402
from srgan_fast.distributed import upscale_files  # noqa: E402
from srgan_fast.io.atomic import write_bytes_atomically  # noqa: E402
from srgan_fast.io.batch import collect_jobs, upscale_file  # noqa: E402
from srgan_fast.io.save import write_image  # noqa: E402
from srgan_fast.options import parse_size  # noqa: E402


def make_folder(folder: Path, count: int, size: tuple[int, int]) -> None:
    """Smooth random images (a photo compresses and upscales like this, unlike white noise)."""
    rng = np.random.default_rng(0)
    h, w = size
    for index in range(count):
        coarse = rng.integers(0, 256, (h // 16 + 1, w // 16 + 1, 3)).astype(np.float32)
        image = np.repeat(np.repeat(coarse, 16, axis=0), 16, axis=1)[:h, :w]
        noise = rng.normal(0, 6, image.shape)
        write_image(folder / f"img{index:03d}.png", np.clip(image + noise, 0, 255).astype(np.uint8))


def local_run(model: str, folder: Path, output: Path, threads: int) -> float:
    upscaler = Upscaler(model, backend="native", device="cpu", threads=threads)
    jobs = collect_jobs([str(folder)], str(output), None).jobs
    started = time.perf_counter()
    for source, destination in jobs:
        upscale_file(upscaler, source, destination, overwrite=True, max_pixels=10**9)
    return time.perf_counter() - started


def video_runs(args, root: Path, workers_list: list[int]) -> list[dict]:
    """The same generated video, locally on one thread and on Ray with each worker count (lossless ffv1)."""
    from srgan_fast.distributed import upscale_video as upscale_video_on_ray
    from srgan_fast.video import upscale_video
    from srgan_fast.video.synthetic import write_test_video

    fps = 25
    h, w = args.video_size
    source = root / "source.mkv"
    write_test_video(source, width=w, height=h, pts=[i * 40 for i in range(args.video_frames)],
                     encoder_options={"g": str(args.gop)})
    started = time.perf_counter()
    upscale_video(source, root / "local.mkv", model=args.model, backend="native", device="cpu", codec="ffv1",
                  progress=False, threads=1)
    rows = [{"run": "local, 1 thread", "seconds": time.perf_counter() - started, "segments": 1}]
    for workers in workers_list:
        result = upscale_video_on_ray(source, root / f"ray{workers}.mkv", segment_seconds=args.gop / fps,
                                      model=args.model, backend="native", codec="ffv1", workers=workers,
                                      threads_per_worker=1, progress=False)
        rows.append({"run": f"ray, {workers} worker(s) x 1 thread", "seconds": result.seconds,
                     "segments": result.segments})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--size", type=parse_size, default=(1080, 1920), help="HxW of each image")
    parser.add_argument("--model", default="srgan")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--address", help="a running Ray cluster (default: a local instance)")
    parser.add_argument("--gpus-per-worker", type=float, default=0.0)
    parser.add_argument("--video-frames", type=int, default=24, help="0: no video rows")
    parser.add_argument("--video-size", type=parse_size, default=(136, 240), help="HxW, even sides (4:2:0)")
    parser.add_argument("--gop", type=int, default=8, help="frames per keyframe, and so per segment")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    import os

    import ray

    root = Path(tempfile.mkdtemp(prefix="srgan-fast-distributed-"))
    try:
        folder = root / "in"
        folder.mkdir()
        make_folder(folder, args.count, args.size)
        rows = []
        if not args.gpus_per_worker:
            for threads, label in ((1, "local, 1 thread"), (0, f"local, {os.cpu_count()} threads")):
                seconds = local_run(args.model, folder, root / f"local{threads}", threads)
                rows.append({"run": label, "seconds": seconds})
        ray.init(address=args.address, num_cpus=None if args.address else os.cpu_count(), include_dashboard=False,
                 log_to_driver=False)
        for workers in args.workers:
            summary = upscale_files([str(folder)], str(root / f"ray{workers}"), model=args.model, backend="native",
                                    workers=workers, gpus_per_worker=args.gpus_per_worker, threads_per_worker=1)
            if summary.failed:
                raise SystemExit(f"{summary.failed} files failed on Ray: {summary.line()}")
            rows.append({"run": f"ray, {workers} worker(s) x 1 thread", "seconds": summary.seconds})
        video_rows = video_runs(args, root, args.workers) if args.video_frames else []
        ray.shutdown()
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(f"{args.count} images of {args.size[1]}x{args.size[0]}, model {args.model}")
    for row in rows:
        row["images_per_s"] = args.count / row["seconds"]
        print(f"  {row['run']:32} {row['seconds']:8.2f} s  {row['images_per_s']:7.3f} images/s")
    local_one = next((r["seconds"] for r in rows if r["run"] == "local, 1 thread"), None)
    ray_one = next((r["seconds"] for r in rows if r["run"].startswith("ray, 1 worker")), None)
    overhead = None
    if local_one is not None and ray_one is not None:
        overhead = (ray_one - local_one) / args.count * 1e3
        print(f"  Ray overhead per image (1 worker against local on 1 thread): {overhead:.0f} ms")
    for row in video_rows:
        print(f"  video: {row['run']:25} {row['seconds']:8.2f} s  {row['segments']} segment(s)")
    segment_overhead = None
    if len(video_rows) > 1:
        segment_overhead = (video_rows[1]["seconds"] - video_rows[0]["seconds"]) / video_rows[1]["segments"] * 1e3
        print(f"  Ray overhead per video segment (1 worker against local on 1 thread): {segment_overhead:.0f} ms")
    if args.json:
        report = {"count": args.count, "size": list(args.size), "model": args.model, "rows": rows,
                  "ray_overhead_ms_per_image": overhead, "video_rows": video_rows,
                  "ray_overhead_ms_per_segment": segment_overhead}
        write_bytes_atomically(args.json, json.dumps(report, indent=1).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
