"""Self-ensemble's gain and cost: PSNR/SSIM-Y of a model with and without ``tta`` on the training run's
validation split, and the time of each, measured side by side in one run.

    python benchmarks/tta.py --data ../shared/data/train --model srresnet [--backend native --precision fp32]

The split is the one training held aside (every ``--val-every``-th image by sorted path, as training.data
splits it); HR images are cropped to a multiple of 4 and downscaled with the training kernel, then scored as
benchmarks/quality.py does (BT.601 Y, 4-px shave). For each image the plain and the ensembled upscale run back
to back, so the time factor is measured under the same load.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from srgan_fast.api import Upscaler  # noqa: E402
from srgan_fast.io.atomic import write_bytes_atomically  # noqa: E402
from srgan_fast.degradation import bicubic_downscale, crop_to_multiple  # noqa: E402
from srgan_fast.metrics import psnr_y, ssim_y  # noqa: E402
from training.evaluate import validation_images  # noqa: E402


def timed(upscaler: Upscaler, image: np.ndarray) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    out = upscaler(image)
    return out, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", required=True, help="the training HR folders")
    parser.add_argument("--val-every", type=int, default=10, help="the split training used (default: %(default)s)")
    parser.add_argument("--model", default="srresnet")
    parser.add_argument("--backend", default="native")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--json", type=Path, help="write per-image and mean results here")
    args = parser.parse_args()

    options = dict(backend=args.backend, device="cpu", precision=args.precision)
    plain, ensemble = Upscaler(args.model, **options), Upscaler(args.model, tta=True, **options)
    rows = []
    print(f"{plain.describe()} | with tta\n{'image':28} {'PSNR-Y':>8} {'tta':>8} {'SSIM-Y':>7} {'tta':>7} "
          f"{'s':>7} {'tta s':>7}")
    for name, image in validation_images(args.data, args.val_every):
        hr = crop_to_multiple(image)
        lr = bicubic_downscale(hr)
        sr, seconds = timed(plain, lr)
        sr_tta, seconds_tta = timed(ensemble, lr)
        row = {"image": Path(name).name, "psnr_y": psnr_y(sr, hr), "psnr_y_tta": psnr_y(sr_tta, hr),
               "ssim_y": ssim_y(sr, hr), "ssim_y_tta": ssim_y(sr_tta, hr), "seconds": seconds,
               "seconds_tta": seconds_tta}
        rows.append(row)
        print(f"{row['image'][:28]:28} {row['psnr_y']:8.3f} {row['psnr_y_tta']:8.3f} {row['ssim_y']:7.4f} "
              f"{row['ssim_y_tta']:7.4f} {seconds:7.2f} {seconds_tta:7.2f}")
    mean = {key: float(np.mean([r[key] for r in rows])) for key in rows[0] if key != "image"}
    factor = sum(r["seconds_tta"] for r in rows) / sum(r["seconds"] for r in rows)
    print(f"mean of {len(rows)} images: PSNR-Y {mean['psnr_y']:.3f} -> {mean['psnr_y_tta']:.3f} dB "
          f"({mean['psnr_y_tta'] - mean['psnr_y']:+.3f}), SSIM-Y {mean['ssim_y']:.4f} -> {mean['ssim_y_tta']:.4f}, "
          f"time x{factor:.2f}")
    if args.json:
        report = {"upscaler": plain.describe(), "model": args.model, "mean": mean, "time_factor": factor,
                  "images": rows}
        write_bytes_atomically(args.json, json.dumps(report, indent=1).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
