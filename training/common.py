"""What both training phases share: command-line options, precision, validation, logging, interrupts."""
from __future__ import annotations

import argparse
import contextlib
import csv
import json
import signal
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from srgan_fast.degradation import bicubic_upscale
from srgan_fast.metrics import gradient_energy_y, psnr_y
from training.checkpoint import read_checkpoint_meta
from training.data import (
    RandomCropPairs,
    list_images,
    load_rgb_images,
    split_train_val,
    to_tensor,
    training_loader,
    validation_pairs,
)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", nargs="+", help="folders of HR images (PNG/JPEG, searched recursively)")
    parser.add_argument("--run-dir", required=True, help="checkpoints and log.csv go here")
    parser.add_argument("--steps", type=int, help="train until this step")
    parser.add_argument("--batch", type=int, help="crops per step (paper: 16)")
    parser.add_argument("--crop", type=int, help="HR crop size (paper: 96)")
    parser.add_argument("--lr", type=float, help="Adam learning rate")
    parser.add_argument("--precision", choices=["fp32", "bf16", "fp16"], help="autocast precision")
    parser.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--workers", type=int, help="data loader processes")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--val-every-image", type=int, help="hold aside every n-th image (sorted by path)")
    parser.add_argument("--ckpt-every", type=int, help="steps between checkpoints")
    parser.add_argument("--val-every", type=int, help="steps between validation PSNR")
    parser.add_argument("--log-every", type=int, help="steps between rows of RUN_DIR/log.csv")
    parser.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.safetensors")
    parser.add_argument("--max-minutes", type=float,
                        help="checkpoint and stop after this much wall time (this invocation only; not saved)")


COMMON_DEFAULTS = dict(batch=16, crop=96, precision="bf16", workers=1, seed=0, val_every_image=10,
                       ckpt_every=500, val_every=500, log_every=10)


# Options that describe one invocation, not the run: never saved into (or taken from) a checkpoint's config.
PER_INVOCATION = ("resume", "max_minutes")


def resolve_config(args: argparse.Namespace, defaults: dict, saved: dict | None) -> dict:
    """Explicit options win, then the resumed run's config, then the defaults."""
    config = dict(defaults)
    if saved:
        config.update(saved)
    config.update({k: v for k, v in vars(args).items() if v is not None and k not in PER_INVOCATION})
    if config.get("device") is None:
        config["device"] = "cuda" if torch.cuda.is_available() else "cpu"
    if not config.get("data"):
        raise SystemExit("error: --data is required (folders of HR training images)")
    return config


def open_run(args: argparse.Namespace, defaults: dict) -> tuple[Path, Path, dict]:
    """(run folder, its checkpoint path, the run's config): a resumed run starts from its saved config."""
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt = run_dir / "last.safetensors"
    if args.resume and not ckpt.exists():
        raise SystemExit(f"error: --resume given but {ckpt} does not exist")
    saved = read_checkpoint_meta(ckpt)["config"] if args.resume else None
    return run_dir, ckpt, resolve_config(args, defaults, saved)


def autocast(config: dict):
    if config["precision"] == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if config["precision"] == "bf16" else torch.float16
    return torch.autocast(torch.device(config["device"]).type, dtype=dtype)


def batch_to_device(batch: torch.Tensor, config: dict) -> torch.Tensor:
    """A loader batch [B, 3, h, w] on the run's device, channels_last. Non-blocking: on CUDA the loader pins its
    batches (run_training), so the copy overlaps the host's work; elsewhere it is an ordinary copy."""
    return batch.to(config["device"], non_blocking=True).contiguous(memory_format=torch.channels_last)


def prepare_data(config: dict) -> tuple[RandomCropPairs, list]:
    files = list_images(config["data"])
    train_files, val_files = split_train_val(files, config["val_every_image"])
    train_images, _ = load_rgb_images(train_files, min_size=config["crop"])
    val_images, _ = load_rgb_images(val_files, min_size=config["crop"]) if val_files else ([], [])
    print(f"data: {len(train_images)} training images, {len(val_images)} validation images")
    return RandomCropPairs(train_images, config["crop"], config["seed"]), validation_pairs(val_images)


@torch.no_grad()
def validate(generator: torch.nn.Module, pairs: list, config: dict) -> dict[str, float]:
    """Mean PSNR-Y (4-px shave) of the generator and of bicubic on the validation pairs, and the ratio of
    mean gradient energy SR/HR on Y (below 1: blurrier than the truth)."""
    if not pairs:
        return dict(val_psnr_y=float("nan"), val_bicubic_psnr_y=float("nan"), val_grad_ratio=float("nan"))
    was_training = generator.training
    generator.eval()
    model_psnr, bicubic_psnr, sr_energy, hr_energy = [], [], [], []
    for lr, hr in pairs:
        x = to_tensor(lr)[None].to(config["device"]).contiguous(memory_format=torch.channels_last)
        with autocast(config):
            y = generator(x)
        sr = (y.float().clamp(0, 1)[0].permute(1, 2, 0).cpu().numpy() * 255.0).round().astype(np.uint8)
        model_psnr.append(psnr_y(sr, hr))
        bicubic_psnr.append(psnr_y(bicubic_upscale(lr), hr))
        sr_energy.append(gradient_energy_y(sr))
        hr_energy.append(gradient_energy_y(hr))
    generator.train(was_training)
    return dict(val_psnr_y=float(np.mean(model_psnr)), val_bicubic_psnr_y=float(np.mean(bicubic_psnr)),
                val_grad_ratio=float(np.mean(sr_energy) / np.mean(hr_energy)))


class CsvLog:
    """Appends one row per logged step to RUN_DIR/log.csv (kept across resumes)."""

    def __init__(self, path: Path, fields: list[str]):
        self.path, self.fields = path, fields
        if not path.exists():
            with path.open("w", newline="") as f:
                csv.writer(f).writerow(fields)

    def write(self, **row) -> None:
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow([row.get(k, "") for k in self.fields])


class StopFlag:
    """Ctrl-C or SIGTERM ask the loop to checkpoint and stop at the end of the current step (a second one
    stops at once). A context manager: the previous handlers come back on exit."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def __enter__(self) -> "StopFlag":
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(f"\nsignal {signum}: saving a checkpoint and stopping after this step")


class RateMeter:
    def __init__(self):
        self.t0, self.n = time.perf_counter(), 0

    def tick(self) -> float:
        self.n += 1
        return self.n / max(time.perf_counter() - self.t0, 1e-9)


def save_config(run_dir: Path, config: dict) -> None:
    (run_dir / "config.json").write_text(json.dumps(config, indent=2))


def make_grad_scaler(config: dict) -> torch.amp.GradScaler:
    """fp16 needs dynamic loss scaling so that small gradients do not flush to zero; bf16 and fp32 pass through."""
    return torch.amp.GradScaler(torch.device(config["device"]).type, enabled=config["precision"] == "fp16")


def scaler_metadata(scalers: dict[str, torch.amp.GradScaler]) -> dict[str, str]:
    return {f"scaler/{name}": json.dumps(s.state_dict()) for name, s in scalers.items() if s.is_enabled()}


def restore_scalers(metadata: dict[str, str], scalers: dict[str, torch.amp.GradScaler]) -> None:
    for name, scaler in scalers.items():
        if f"scaler/{name}" in metadata:
            scaler.load_state_dict(json.loads(metadata[f"scaler/{name}"]))


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> None:
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def run_training(name: str, config: dict, start: int, generator: torch.nn.Module, step_fn, save_fn,
                 log: CsvLog, validate_at_start: bool = False, max_minutes: float | None = None) -> int:
    """The loop both phases share: batches from step ``start`` to ``config["steps"]``, progress bar, CSV rows,
    validation, checkpoints every ``ckpt_every`` steps, on Ctrl-C/SIGTERM and at the end.

    step_fn(lr_batch [B,3,h,w], hr_batch [B,3,4h,4w], step) -> dict of floats for the log ("loss" first);
    save_fn(step) writes the checkpoint. ``validate_at_start``: a fresh run logs the starting model's scores
    as step 0 (phase 2 starts from a trained generator). ``max_minutes``: stop as a SIGTERM would, once this
    much wall time has passed. Returns the step reached.
    """
    dataset, val_pairs = prepare_data(config)
    if validate_at_start and start == 0:
        scores = validate(generator, val_pairs, config)
        log.write(step=0, **scores)
        print(f"step 0: val PSNR-Y {scores['val_psnr_y']:.3f} dB (bicubic {scores['val_bicubic_psnr_y']:.3f}), "
              f"gradient energy SR/HR {scores['val_grad_ratio']:.3f}")
    on_cuda = torch.device(config["device"]).type == "cuda"
    # Every training batch has one shape, so cuDNN's per-shape algorithm search pays for itself at once.
    torch.backends.cudnn.benchmark = on_cuda
    meter = RateMeter()
    deadline = time.monotonic() + 60.0 * max_minutes if max_minutes else float("inf")
    step = start
    loader = training_loader(dataset, config["batch"], start, config["steps"], config["workers"], pin_memory=on_cuda)
    with StopFlag() as stop, tqdm(total=config["steps"], initial=start, desc=name, dynamic_ncols=True) as bar:
        for lr_batch, hr_batch in loader:
            row = step_fn(lr_batch, hr_batch, step)
            step += 1
            rate = meter.tick()
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss']:.4f}", steps_per_s=f"{rate:.2f}")
            row = dict(step=step, steps_per_s=rate, **row)
            if time.monotonic() > deadline and not stop.requested:
                stop.requested = True
                bar.write(f"--max-minutes {max_minutes} reached: saving a checkpoint and stopping")
            if step % config["val_every"] == 0 or step == config["steps"] or stop.requested:
                row.update(validate(generator, val_pairs, config))
                bar.write(f"step {step}: val PSNR-Y {row['val_psnr_y']:.3f} dB "
                          f"(bicubic {row['val_bicubic_psnr_y']:.3f}), gradient energy SR/HR "
                          f"{row['val_grad_ratio']:.3f}")
            if step % config["log_every"] == 0 or "val_psnr_y" in row:
                log.write(**row)
            if step % config["ckpt_every"] == 0 or stop.requested:
                save_fn(step)
            if stop.requested:
                break
    save_fn(step)
    return step
