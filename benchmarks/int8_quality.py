"""The quality cost of native int8 against fp32 on the validation split, the calibration method chosen by it,
and the banding check.

    python benchmarks/int8_quality.py --data DIR [DIR...] --models srresnet srgan --json out.json

Validation split: every 10th image of the training folders by sorted path (the images training held out);
calibration crops come from the other images (as the shipped tables: training/calibrate_int8.py). Each HR
image is cropped to a multiple of 4 and downscaled by the training kernel; PSNR/SSIM on BT.601 Y, 4-px shave.
For the first model every calibration method is scored; the shipped tables use native_int8.METHOD.
Banding: smooth 16-bit gradients (at most 1.2 levels of 8 bits per pixel) upscaled in int8 and fp32; the
largest difference in levels of 8 bits (the target is 2).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from srgan_fast.api import Upscaler  # noqa: E402
from srgan_fast.backends import native_int8  # noqa: E402
from srgan_fast.backends.calibration import METHODS  # noqa: E402
from srgan_fast.degradation import bicubic_downscale, crop_to_multiple  # noqa: E402
from srgan_fast.io.atomic import write_bytes_atomically  # noqa: E402
from srgan_fast.io.images import read_image  # noqa: E402
from srgan_fast.metrics import psnr_y, ssim_y  # noqa: E402
from srgan_fast.weights import load_weights  # noqa: E402
from training.data import list_images, split_train_val  # noqa: E402


class Whole:
    """A bare engine on whole images (the validation images fit), for tables the Upscaler would not pick."""

    def __init__(self, engine):
        self.engine = engine

    def upscale(self, image: np.ndarray) -> np.ndarray:
        return self.engine.run(np.ascontiguousarray(image[None]))[0]


def gradients() -> list[np.ndarray]:
    y, x = np.mgrid[0:64, 0:128]
    return [np.stack([x * 300 + 10000, y * 200 + 20000, (x + y) * 150 + 5000], axis=-1).astype(np.uint16),
            np.stack([x * 150 + 40000, x * 100 + y * 100 + 3000, 60000 - y * 300], axis=-1).astype(np.uint16)]


def score(upscaler, pairs) -> dict:
    p = [psnr_y(upscaler.upscale(lr), hr) for lr, hr in pairs]
    s = [ssim_y(upscaler.upscale(lr), hr) for lr, hr in pairs]
    return {"psnr_y": float(np.mean(p)), "ssim_y": float(np.mean(s))}


def banding(int8, fp32) -> float:
    return max(float(np.abs(int8.upscale(g).astype(np.int64) - fp32.upscale(g).astype(np.int64)).max()) / 257
               for g in gradients())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", required=True, help="the training folders")
    parser.add_argument("--models", nargs="+", default=["srresnet", "srgan"])
    parser.add_argument("--methods", nargs="*", default=list(METHODS),
                        help="calibration methods to score on the first model (default: all; none: skip)")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    train, val = split_train_val(list_images(args.data))
    pairs = []
    for path in val:
        hr = crop_to_multiple(read_image(path)[:, :, :3])
        pairs.append((bicubic_downscale(hr), hr))
    report = {"validation_images": len(pairs), "calibration": f"shipped tables ({native_int8.METHOD}); methods "
              f"table: {native_int8.MAX_TILES} crops {native_int8.TILE} of {len(train)} training-split images",
              "models": {}}
    for k, model in enumerate(args.models):
        weights = load_weights(model)
        fp32 = Upscaler(weights, backend="native", precision="fp32")
        int8 = Upscaler(weights, backend="native", precision="int8")
        base, quant = score(fp32, pairs), score(int8, pairs)
        row = {"fp32": base, "int8": quant, "describe": int8.describe(),
               "d_psnr_y": quant["psnr_y"] - base["psnr_y"], "d_ssim_y": quant["ssim_y"] - base["ssim_y"],
               "banding_max_levels": banding(int8, fp32)}
        print(f"{model}: fp32 {base['psnr_y']:.3f} / {base['ssim_y']:.4f}, int8 {quant['psnr_y']:.3f} / "
              f"{quant['ssim_y']:.4f} ({row['d_psnr_y']:+.3f} dB, {row['d_ssim_y']:+.4f}), banding "
              f"{row['banding_max_levels']:.2f} levels", flush=True)
        if k == 0 and args.methods:
            row["methods"] = {}
            for method in args.methods:
                table = native_int8.calibrate(weights, train, method)
                engine = native_int8.build_engine(weights, "int8", **native_int8.engine_options(weights, table))
                upscaler = Whole(engine)
                scored = score(upscaler, pairs)
                row["methods"][method] = {"d_psnr_y": scored["psnr_y"] - base["psnr_y"],
                                          "d_ssim_y": scored["ssim_y"] - base["ssim_y"],
                                          "banding_max_levels": banding(upscaler, fp32)}
                print(f"  {method:10} {row['methods'][method]['d_psnr_y']:+.4f} dB "
                      f"{row['methods'][method]['d_ssim_y']:+.5f} SSIM-Y, banding "
                      f"{row['methods'][method]['banding_max_levels']:.2f}", flush=True)
        report["models"][model] = row
    if args.json:
        write_bytes_atomically(args.json, (json.dumps(report, indent=1) + "\n").encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
