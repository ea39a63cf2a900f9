"""Export a training checkpoint as an srgan_fast weights file, scored on the run's validation split.

    python -m training.export runs/srresnet/last.safetensors --name srresnet --out srgan_fast/pretrained/

Checkpoint -> BN folded into the convs (the runtime's form) -> ``save_weights`` with metadata (architecture,
training data, steps, recipe, validation PSNR-Y/SSIM-Y of model and bicubic, gradient energy SR/HR), then
OUT/manifest.json gets the entry {file, sha256, description} (rewritten atomically), which is what
``srgan_fast.weights.available_models()`` reads.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from srgan_fast.io.atomic import write_bytes_atomically
from srgan_fast.weights import architecture_metadata, save_weights
from training.checkpoint import read_checkpoint_meta
from training.evaluate import evaluate, generator_from_checkpoint, validation_images

EVAL_PROTOCOL = ("validation split of the training folders; HR cropped to a multiple of 4, LR by antialiased "
                 "bicubic x4 (Pillow, Keys a=-0.5); PSNR/SSIM on BT.601 Y (16-235) with a 4-px border shave; "
                 "fp32 whole-image inference")


def describe_recipe(config: dict, step: int) -> str:
    """One line saying how a run trained, from its config (the last one used, if it was resumed with changes)."""
    batch = f"batch {config['batch']} x {config['crop']}px crops, {config['precision']}"
    if config.get("phase", "srresnet") == "srresnet":
        milestones = f" halved at steps {config['lr_milestones']}" if config.get("lr_milestones") else ""
        return f"SRResNet: {config['loss']} loss, Adam(0.9, 0.999) lr {config['lr']}{milestones}, {batch}, {step} steps"
    init = config.get("init_config", {})
    # A checkpoint's config (either phase) describes itself; an exported file left us its recipe text.
    start = describe_recipe(init, config.get("init_step", 0)) if "batch" in init else init.get("exported", "?")
    drop = config["lr_drop_at"] if config["lr_drop_at"] is not None else config["steps"] // 2
    content = config.get("content_loss", "?")
    if content.startswith("pixel"):
        content += f" (feature-matching weight {config['fm_weight']})"
    return (f"SRGAN: content {content} + {config['adversarial_weight']} x -log D(G(x)), D/G alternating (k=1), "
            f"Adam lr {config['lr']} until step {drop} then {config['lr_low']}, "
            f"D base width {config['disc_channels']}, {batch}, {step} steps; initialised from [{start}]")


def training_steps(config: dict, step: int) -> int:
    return step + (config.get("init_step", 0) if config.get("phase") == "srgan" else 0)


def write_manifest_entry(out_dir: Path, name: str, entry: dict) -> None:
    """Add or replace one model in OUT/manifest.json, atomically (temp file + rename)."""
    manifest_path = out_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"models": {}}
    manifest["models"][name] = entry
    write_bytes_atomically(manifest_path, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())


def export(checkpoint: str, name: str, out_dir: str, data: list[str] | None = None,
           val_every_image: int | None = None, description: str | None = None, recipe: str | None = None,
           skip_eval: bool = False) -> dict[str, str]:
    """Write OUT/NAME.safetensors and its manifest entry; returns the metadata written."""
    generator, config = generator_from_checkpoint(checkpoint)
    step = read_checkpoint_meta(checkpoint)["step"]
    data = data or config["data"]
    val_every_image = val_every_image or config["val_every_image"]
    metadata = {
        "name": name, **architecture_metadata(generator.network), "input_range": "0,1", "output_range": "0,1",
        "training_phase": config.get("phase", "srresnet"),
        "training_data": f"HR folders {', '.join(map(str, data))}; one image in every {val_every_image} (by sorted "
                         "path) held aside for validation",
        "training_steps": str(training_steps(config, step)),
        "training_recipe": recipe or describe_recipe(config, step),
    }
    if skip_eval:
        metadata["eval_protocol"] = "not evaluated"
    else:
        result = evaluate(generator, validation_images(data, val_every_image))
        mean = result["mean"]
        metadata.update({
            "eval_protocol": EVAL_PROTOCOL, "eval_images": str(result["count"]),
            "eval_psnr_y": f"{mean['psnr_y']:.3f}", "eval_bicubic_psnr_y": f"{mean['bicubic_psnr_y']:.3f}",
            "eval_ssim_y": f"{mean['ssim_y']:.4f}", "eval_bicubic_ssim_y": f"{mean['bicubic_ssim_y']:.4f}",
            "eval_gradient_ratio": f"{mean['gradient_ratio']:.3f}",
            "eval_bicubic_gradient_ratio": f"{mean['bicubic_gradient_ratio']:.3f}",
        })
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().float().numpy() for k, v in generator.state_dict().items()}
    sha256 = save_weights(out / f"{name}.safetensors", tensors, metadata)
    if description is None:
        kind = "perceptual (adversarial)" if metadata["training_phase"] == "srgan" else "PSNR-oriented"
        description = (f"{kind} x{generator.network.scale} SRResNet, {generator.num_blocks} blocks x "
                       f"{generator.channels} channels")
        if not skip_eval:
            gain = float(metadata["eval_psnr_y"]) - float(metadata["eval_bicubic_psnr_y"])
            description += (f"; validation PSNR-Y {metadata['eval_psnr_y']} dB ({gain:+.2f} over bicubic), "
                            f"gradient energy SR/HR {metadata['eval_gradient_ratio']}")
    write_manifest_entry(out, name, {"file": f"{name}.safetensors", "sha256": sha256, "description": description})
    return metadata


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="training checkpoint (RUN_DIR/last.safetensors) of either phase")
    parser.add_argument("--name", required=True, help="model name, e.g. srresnet or srgan")
    parser.add_argument("--out", default="srgan_fast/pretrained", help="folder of the weights and manifest.json")
    parser.add_argument("--data", nargs="+", help="training folders for the validation split (default: the run's)")
    parser.add_argument("--val-every-image", type=int, help="validation split stride (default: the run's)")
    parser.add_argument("--description", help="manifest description (default: made from the scores)")
    parser.add_argument("--recipe", help="training recipe text (default: made from the run's last config)")
    parser.add_argument("--skip-eval", action="store_true", help="write no eval numbers (quick trial exports)")
    args = parser.parse_args(argv)
    metadata = export(args.checkpoint, args.name, args.out, args.data, args.val_every_image, args.description,
                      args.recipe, args.skip_eval)
    for key in sorted(metadata):
        print(f"{key}: {metadata[key]}")
    print(f"wrote {Path(args.out) / (args.name + '.safetensors')} and {Path(args.out) / 'manifest.json'}")


if __name__ == "__main__":
    main()
