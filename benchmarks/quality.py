"""Quality of a model on any backend/precision: PSNR and SSIM on BT.601 Y (4-px shave) against bicubic.

    python benchmarks/quality.py --hr DIR [DIR...] [--model srresnet] [--backend native --precision bf16]
    python benchmarks/quality.py --val-split ../shared/data/train --crop 256 --limit 12 --backend native \
        --precision bf16 --path amx_emulated

Each HR image is cropped to a multiple of 4 and downscaled with the training kernel
(``srgan_fast.degradation.bicubic_downscale``); the model's ×4 result and bicubic's are scored against it.
Running it for two precisions of one backend gives the quality cost of the faster one.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from srgan_fast.api import Upscaler  # noqa: E402
from srgan_fast.io.atomic import write_bytes_atomically  # noqa: E402
from srgan_fast.degradation import bicubic_downscale, bicubic_upscale, crop_to_multiple  # noqa: E402
from srgan_fast.io.images import READ_SUFFIXES, read_image  # noqa: E402
from srgan_fast.metrics import psnr_y, ssim_y  # noqa: E402


def hr_files(folders: list[str], val_split: bool) -> list[Path]:
    """The images of the folders, or the validation split a training run over them holds aside."""
    if val_split:
        from training.data import list_images, split_train_val

        return [Path(p) for p in split_train_val(list_images(folders))[1]]
    return sorted(p for folder in folders for p in Path(folder).rglob("*") if p.suffix.lower() in READ_SUFFIXES)


def score_folder(upscaler: Upscaler, files: list[Path], crop: int | None = None) -> list[dict]:
    """crop: score the central crop x crop HR pixels of each image (a multiple of 4), for slow paths."""
    if not files:
        raise SystemExit("error: no images to score")
    rows = []
    for path in files:
        hr = read_image(path)[:, :, :3]
        if crop:
            top, left = max(0, (hr.shape[0] - crop) // 2), max(0, (hr.shape[1] - crop) // 2)
            hr = hr[top:top + crop, left:left + crop]
        hr = crop_to_multiple(hr)
        if hr.dtype != np.uint8:
            hr = (hr.astype(np.uint32) * 255 // 65535).astype(np.uint8)
        lr = bicubic_downscale(hr)
        sr, bicubic = upscaler.upscale(lr), bicubic_upscale(lr)
        rows.append({"image": path.name, "psnr_y": psnr_y(sr, hr), "ssim_y": ssim_y(sr, hr),
                     "bicubic_psnr_y": psnr_y(bicubic, hr), "bicubic_ssim_y": ssim_y(bicubic, hr)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    images = parser.add_mutually_exclusive_group(required=True)
    images.add_argument("--hr", nargs="+", help="folders of HR images")
    images.add_argument("--val-split", nargs="+", help="training folders: score their validation split")
    parser.add_argument("--crop", type=int, help="score the central CROP x CROP of each HR image")
    parser.add_argument("--limit", type=int, help="score only the first LIMIT images")
    parser.add_argument("--path", help="the native backend's kernel path (e.g. amx_emulated)")
    parser.add_argument("--model", default="srresnet")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--device")
    parser.add_argument("--precision")
    parser.add_argument("--json", help="write per-image and mean scores here")
    args = parser.parse_args(argv)

    options = {"path": args.path} if args.path else {}
    upscaler = Upscaler(args.model, backend=args.backend, device=args.device, precision=args.precision, **options)
    files = hr_files(args.val_split or args.hr, bool(args.val_split))[:args.limit]
    rows = score_folder(upscaler, files, args.crop)
    print(f"{upscaler.describe()}\n{'image':32} {'PSNR-Y':>8} {'bicubic':>8} {'SSIM-Y':>7} {'bicubic':>7}")
    for r in rows:
        print(f"{r['image'][:32]:32} {r['psnr_y']:8.3f} {r['bicubic_psnr_y']:8.3f} {r['ssim_y']:7.4f} "
              f"{r['bicubic_ssim_y']:7.4f}")
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "image"}
    gain = mean["psnr_y"] - mean["bicubic_psnr_y"]
    print(f"{'mean (' + str(len(rows)) + ' images)':32} {mean['psnr_y']:8.3f} {mean['bicubic_psnr_y']:8.3f} "
          f"{mean['ssim_y']:7.4f} {mean['bicubic_ssim_y']:7.4f}   gain {gain:+.3f} dB")
    if args.json:
        report = {"upscaler": upscaler.describe(), "mean": mean, "images": rows}
        write_bytes_atomically(args.json, json.dumps(report, indent=2).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
