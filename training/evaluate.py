"""Evaluate a generator against bicubic: PSNR/SSIM on BT.601 Y (4-px shave) and gradient energy, per image.

    python -m training.evaluate --model srresnet --hr DIR [DIR...] [--crops OUT_DIR]
    python -m training.evaluate --checkpoint runs/srresnet/last.safetensors --val-split [--crops OUT_DIR]

Each HR image is cropped to a multiple of 4, its LR made with ``bicubic_downscale`` (the training kernel),
then upscaled by the model (fp32, whole image) and by bicubic. ``--val-split`` takes exactly the images the
training run held aside (``split_train_val`` over its --data folders, every --val-every-image-th).
"""
from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from srgan_fast.io.atomic import atomic_output
from srgan_fast.backends.torch_backend import build_generator
from srgan_fast.degradation import bicubic_downscale, bicubic_upscale, crop_to_multiple
from srgan_fast.metrics import gradient_energy_y, psnr_y, ssim_y
from srgan_fast.reference.model import Generator, fold_batchnorm
from srgan_fast.weights import WeightsError, load_weights
from training.checkpoint import load_module_state, read_checkpoint_meta
from training.data import list_images, load_rgb_images, split_train_val


@dataclass
class ImageScores:
    name: str
    psnr_y: float
    bicubic_psnr_y: float
    ssim_y: float
    bicubic_ssim_y: float
    gradient_energy_sr: float
    gradient_energy_bicubic: float
    gradient_energy_hr: float


def generator_from_checkpoint(path: str | os.PathLike) -> tuple[Generator, dict]:
    """The BN-folded eval-mode generator of a training checkpoint, and that run's config."""
    config = read_checkpoint_meta(path)["config"]
    generator = Generator(config["num_blocks"], config["channels"], config.get("batch_norm", True))
    generator.load_state_dict(load_module_state(path, "generator"))
    return fold_batchnorm(generator.eval()), config


@torch.no_grad()
def upscale(generator: Generator, lr: np.ndarray) -> np.ndarray:
    """uint8 [h, w, 3] -> uint8 [4h, 4w, 3] through the fp32 folded generator."""
    x = torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1))).float().div(255.0)[None]
    y = generator(x)[0].clamp(0.0, 1.0).mul(255.0).round()
    return y.to(torch.uint8).permute(1, 2, 0).numpy()


def most_detailed_window(hr: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left corner of the size×size window (on a half-window grid) with the most HR gradient energy."""
    h, w = hr.shape[:2]
    size = min(size, h, w)
    stride = max(size // 2, 1)
    corners = [(y, x) for y in range(0, h - size + 1, stride) for x in range(0, w - size + 1, stride)]
    return max(corners, key=lambda c: gradient_energy_y(hr[c[0] : c[0] + size, c[1] : c[1] + size]))


def write_png_atomically(path: Path, image: np.ndarray) -> None:
    with atomic_output(path, suffix=".png") as tmp:
        Image.fromarray(image).save(tmp)


def evaluate(generator: Generator, images: list[tuple[str, np.ndarray]], crops_dir: str | None = None,
             crop_size: int = 160) -> dict:
    """Scores per image (name, uint8 HR [H, W, 3]) and their means; writes bicubic | model | HR crops if asked."""
    generator = generator.eval()
    rows = []
    if crops_dir:
        Path(crops_dir).mkdir(parents=True, exist_ok=True)
    for name, image in images:
        hr = np.ascontiguousarray(crop_to_multiple(image, 4))
        lr = bicubic_downscale(hr, 4)
        sr, bicubic = upscale(generator, lr), bicubic_upscale(lr)
        rows.append(ImageScores(name, psnr_y(sr, hr), psnr_y(bicubic, hr), ssim_y(sr, hr), ssim_y(bicubic, hr),
                                gradient_energy_y(sr), gradient_energy_y(bicubic), gradient_energy_y(hr)))
        if crops_dir:
            y, x = most_detailed_window(hr, crop_size)
            window = (slice(y, y + crop_size), slice(x, x + crop_size))
            strip = np.concatenate([bicubic[window], sr[window], hr[window]], axis=1)
            write_png_atomically(Path(crops_dir) / f"{Path(name).stem}_bicubic_model_hr.png", strip)
    mean = {field: float(np.mean([getattr(r, field) for r in rows])) for field in asdict(rows[0]) if field != "name"}
    mean["gradient_ratio"] = mean["gradient_energy_sr"] / mean["gradient_energy_hr"]
    mean["bicubic_gradient_ratio"] = mean["gradient_energy_bicubic"] / mean["gradient_energy_hr"]
    return {"images": [asdict(r) for r in rows], "mean": mean, "count": len(rows)}


def validation_images(data: list[str], val_every_image: int) -> list[tuple[str, np.ndarray]]:
    """The images a training run over ``data`` held aside, decoded (unreadable ones skipped, as in training)."""
    _, val_files = split_train_val(list_images(data), val_every_image)
    images, skipped = load_rgb_images(val_files, min_size=16)
    usable = [f for f in val_files if f not in set(skipped)]
    return [(str(f), im) for f, im in zip(usable, images)]


def format_report(result: dict) -> str:
    lines = [f"{'image':40s} {'PSNR-Y':>8s} {'bicubic':>8s} {'SSIM-Y':>7s} {'bicubic':>7s} {'grad SR/HR':>10s}"]
    for r in result["images"]:
        ratio = r["gradient_energy_sr"] / r["gradient_energy_hr"]
        lines.append(f"{Path(r['name']).name[:40]:40s} {r['psnr_y']:8.3f} {r['bicubic_psnr_y']:8.3f} "
                     f"{r['ssim_y']:7.4f} {r['bicubic_ssim_y']:7.4f} {ratio:10.3f}")
    m = result["mean"]
    lines.append(f"{'mean of ' + str(result['count']) + ' images':40s} {m['psnr_y']:8.3f} {m['bicubic_psnr_y']:8.3f} "
                 f"{m['ssim_y']:7.4f} {m['bicubic_ssim_y']:7.4f} {m['gradient_ratio']:10.3f}")
    lines.append(f"PSNR-Y gain over bicubic {m['psnr_y'] - m['bicubic_psnr_y']:+.3f} dB; gradient energy SR/HR "
                 f"{m['gradient_ratio']:.3f} (bicubic {m['bicubic_gradient_ratio']:.3f})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="shipped model name or exported .safetensors file")
    source.add_argument("--checkpoint", help="training checkpoint (RUN_DIR/last.safetensors); BN is folded first")
    images = parser.add_mutually_exclusive_group(required=True)
    images.add_argument("--hr", nargs="+", help="folders of HR images")
    images.add_argument("--val-split", action="store_true", help="the images the training run held aside")
    parser.add_argument("--data", nargs="+", help="with --val-split: training folders (default: the checkpoint's)")
    parser.add_argument("--val-every-image", type=int, help="with --val-split (default: the checkpoint's, else 10)")
    parser.add_argument("--crops", help="write bicubic | model | HR crops as PNG here")
    parser.add_argument("--crop-size", type=int, default=160)
    parser.add_argument("--json", help="also write the scores as JSON here")
    args = parser.parse_args(argv)

    config: dict = {}
    if args.checkpoint:
        generator, config = generator_from_checkpoint(args.checkpoint)
    else:
        try:
            generator = build_generator(load_weights(args.model))
        except WeightsError as exc:
            raise SystemExit(f"error: --model: {exc}") from None
    if args.val_split:
        data = args.data or config.get("data")
        if not data:
            raise SystemExit("error: --val-split needs --data (the training folders) when not given a --checkpoint")
        selected = validation_images(data, args.val_every_image or config.get("val_every_image", 10))
    else:
        files = list_images(args.hr)
        decoded, skipped = load_rgb_images(files, min_size=16)
        selected = [(str(f), im) for f, im in zip([f for f in files if f not in set(skipped)], decoded)]
    result = evaluate(generator, selected, args.crops, args.crop_size)
    print(format_report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
