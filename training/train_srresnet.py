"""Phase 1: SRResNet, the PSNR-oriented generator, with a pixel loss (paper: MSE, Adam 1e-4, batch 16).

    python -m training.train_srresnet --data DIR... --run-dir runs/srresnet --steps 20000 [--resume]

Checkpoints (RUN_DIR/last.safetensors) every --ckpt-every steps and on Ctrl-C/SIGTERM; --resume continues
bit-for-bit from the saved step. ``--loss l1`` with a higher lr converges faster from scratch; a common
route is L1 first, then MSE (resume with ``--loss mse --lr 1e-4``).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from srgan_fast.model import Generator
from training.checkpoint import load_checkpoint, read_checkpoint_meta, save_checkpoint
from training.common import (COMMON_DEFAULTS, CsvLog, RateMeter, StopFlag, add_common_arguments, autocast,
                             prepare_data, resolve_config, save_config, validate)
from training.data import training_loader

DEFAULTS = dict(COMMON_DEFAULTS, steps=20000, lr=1e-4, loss="mse", lr_milestones=[], num_blocks=16, channels=64)
PIXEL_LOSSES = {"mse": F.mse_loss, "l1": F.l1_loss}


def build(config: dict) -> tuple[Generator, torch.optim.Adam]:
    torch.manual_seed(config["seed"])
    generator = Generator(config["num_blocks"], config["channels"]).to(config["device"])
    generator = generator.to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.Adam(generator.parameters(), lr=config["lr"], betas=(0.9, 0.999))
    return generator, optimizer


def learning_rate(config: dict, step: int) -> float:
    """Constant lr, halved at each milestone passed."""
    return config["lr"] * 0.5 ** sum(step >= m for m in config["lr_milestones"])


def train_step(generator, optimizer, lr_batch, hr_batch, config: dict, step: int) -> float:
    for group in optimizer.param_groups:
        group["lr"] = learning_rate(config, step)
    lr_batch = lr_batch.to(config["device"]).contiguous(memory_format=torch.channels_last)
    hr_batch = hr_batch.to(config["device"]).contiguous(memory_format=torch.channels_last)
    with autocast(config):
        sr = generator(lr_batch)
    loss = PIXEL_LOSSES[config["loss"]](sr.float(), hr_batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--loss", choices=sorted(PIXEL_LOSSES))
    parser.add_argument("--lr-milestones", type=int, nargs="*", help="halve the lr at these steps")
    parser.add_argument("--num-blocks", type=int)
    parser.add_argument("--channels", type=int)
    args = parser.parse_args(argv)

    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt = run_dir / "last.safetensors"
    saved = read_checkpoint_meta(ckpt)["config"] if args.resume and ckpt.exists() else None
    config = resolve_config(args, DEFAULTS, saved)
    save_config(run_dir, config)

    generator, optimizer = build(config)
    start = 0
    if args.resume:
        if not ckpt.exists():
            raise SystemExit(f"error: --resume given but {ckpt} does not exist")
        start = load_checkpoint(ckpt, {"generator": generator}, {"generator": optimizer})
        print(f"resumed at step {start}")
    dataset, val_pairs = prepare_data(config)
    log = CsvLog(run_dir / "log.csv", ["step", "loss", "lr", "steps_per_s", "val_psnr_y", "val_bicubic_psnr_y"])
    stop, meter = StopFlag(), RateMeter()

    def checkpoint(step: int) -> None:
        save_checkpoint(ckpt, step, config, {"generator": generator}, {"generator": optimizer})

    step = start
    bar = tqdm(total=config["steps"], initial=start, desc="srresnet", dynamic_ncols=True)
    for lr_batch, hr_batch in training_loader(dataset, config["batch"], start, config["steps"], config["workers"]):
        loss = train_step(generator, optimizer, lr_batch, hr_batch, config, step)
        step += 1
        rate = meter.tick()
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", steps_per_s=f"{rate:.2f}")
        row = dict(step=step, loss=loss, lr=learning_rate(config, step - 1), steps_per_s=rate)
        if step % config["val_every"] == 0 or step == config["steps"]:
            row["val_psnr_y"], row["val_bicubic_psnr_y"] = validate(generator, val_pairs, config)
            bar.write(f"step {step}: val PSNR-Y {row['val_psnr_y']:.3f} dB (bicubic {row['val_bicubic_psnr_y']:.3f})")
        if step % 10 == 0 or "val_psnr_y" in row:
            log.write(**row)
        if step % config["ckpt_every"] == 0 or stop.requested:
            checkpoint(step)
        if stop.requested:
            break
    checkpoint(step)
    bar.close()
    print(f"stopped at step {step}; checkpoint {ckpt}")


if __name__ == "__main__":
    main()
