"""Phase 1: SRResNet, the PSNR-oriented generator, with a pixel loss (paper: MSE, Adam 1e-4, batch 16).

    python -m training.train_srresnet --data DIR... --run-dir runs/srresnet --steps 20000 [--resume]

Checkpoints (RUN_DIR/last.safetensors) every --ckpt-every steps and on Ctrl-C/SIGTERM; --resume continues
bit-for-bit from the saved step. ``--loss l1`` with a higher lr converges faster from scratch; a common
route is L1 first, then MSE (resume with ``--loss mse --lr 1e-4``).
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from srgan_fast.reference.model import Generator
from training.checkpoint import load_checkpoint, read_raw_metadata, save_checkpoint
from training.common import (
    COMMON_DEFAULTS,
    CsvLog,
    add_common_arguments,
    autocast,
    batch_to_device,
    make_grad_scaler,
    open_run,
    optimizer_step,
    restore_scalers,
    run_training,
    save_config,
    scaler_metadata,
    set_learning_rate,
)

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


def train_step(generator, optimizer, scaler, lr_batch, hr_batch, config: dict, step: int) -> dict[str, float]:
    """One Adam step on a batch: LR [B, 3, h, w], HR [B, 3, 4h, 4w], both in [0, 1]."""
    lr = learning_rate(config, step)
    set_learning_rate(optimizer, lr)
    lr_batch, hr_batch = batch_to_device(lr_batch, config), batch_to_device(hr_batch, config)
    with autocast(config):
        sr = generator(lr_batch)
    loss = PIXEL_LOSSES[config["loss"]](sr.float(), hr_batch)
    optimizer_step(loss, optimizer, scaler)
    return dict(loss=loss.item(), lr=lr)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--loss", choices=sorted(PIXEL_LOSSES))
    parser.add_argument("--lr-milestones", type=int, nargs="*", help="halve the lr at these steps")
    parser.add_argument("--num-blocks", type=int)
    parser.add_argument("--channels", type=int)
    args = parser.parse_args(argv)

    run_dir, ckpt, config = open_run(args, DEFAULTS)
    save_config(run_dir, config)

    generator, optimizer = build(config)
    scaler = make_grad_scaler(config)
    start = 0
    if args.resume:
        start = load_checkpoint(ckpt, {"generator": generator}, {"generator": optimizer})
        restore_scalers(read_raw_metadata(ckpt), {"generator": scaler})
        print(f"resumed at step {start}")
    log = CsvLog(run_dir / "log.csv", ["step", "loss", "lr", "steps_per_s", "val_psnr_y", "val_bicubic_psnr_y"])

    def checkpoint(step: int) -> None:
        save_checkpoint(ckpt, step, config, {"generator": generator}, {"generator": optimizer},
                        scaler_metadata({"generator": scaler}))

    step = run_training("srresnet", config, start, generator,
                        lambda lr_batch, hr_batch, step: train_step(generator, optimizer, scaler, lr_batch,
                                                                    hr_batch, config, step),
                        checkpoint, log, max_minutes=args.max_minutes)
    print(f"stopped at step {step}; checkpoint {ckpt}")


if __name__ == "__main__":
    main()
