"""Training speed: steps/s of both phases on this machine, per precision, on random batches (no data loading).

    python -m training.speed --steps 20 --batch 16 --crop 96 --precision fp32 bf16

Phase 2 is timed with the content loss it would use here (VGG19 φ5,4 with --vgg-weights, else pixel + feature
matching); a random VGG costs the same as a trained one, so ``--random-vgg`` times the VGG loss without the file.
The first two steps of each run are warm-up and not counted.
"""
from __future__ import annotations

import argparse
import time

import torch

from srgan_fast.reference.model import Generator
from training import train_srgan, train_srresnet
from training.common import make_grad_scaler
from training.losses import PixelFeatureMatchingLoss, VggContentLoss
from training.vgg import Vgg19Features, load_vgg19_features

WARMUP = 2


def _time(step_fn, steps: int, batch: tuple[torch.Tensor, torch.Tensor]) -> float:
    for i in range(WARMUP):
        step_fn(*batch, i)
    t0 = time.perf_counter()
    for i in range(steps):
        step_fn(*batch, WARMUP + i)
    return steps / (time.perf_counter() - t0)


def measure(phase: str, precision: str, args: argparse.Namespace) -> float:
    config = dict(train_srresnet.DEFAULTS if phase == "srresnet" else train_srgan.DEFAULTS, num_blocks=16, channels=64,
                  device=args.device, precision=precision, steps=10**9)
    generator_rng = torch.Generator().manual_seed(0)
    lr = torch.rand(args.batch, 3, args.crop // 4, args.crop // 4, generator=generator_rng)
    hr = torch.rand(args.batch, 3, args.crop, args.crop, generator=generator_rng)
    if phase == "srresnet":
        generator, optimizer = train_srresnet.build(config)
        scaler = make_grad_scaler(config)
        return _time(lambda l, h, s: train_srresnet.train_step(generator, optimizer, scaler, l, h, config, s),
                     args.steps, (lr, hr))
    nets, optimizers = train_srgan.build(config, Generator(config["num_blocks"], config["channels"]))
    scalers = {name: make_grad_scaler(config) for name in nets}
    if args.vgg_weights or args.random_vgg:
        vgg = load_vgg19_features(args.vgg_weights) if args.vgg_weights else Vgg19Features()
        content = VggContentLoss(vgg.to(args.device).to(memory_format=torch.channels_last))
    else:
        content = PixelFeatureMatchingLoss(config["fm_weight"])
    return _time(lambda l, h, s: train_srgan.train_step(nets, optimizers, scalers, content, l, h, config, s),
                 args.steps, (lr, hr))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--crop", type=int, default=96)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--phase", nargs="+", default=["srresnet", "srgan"], choices=["srresnet", "srgan"])
    parser.add_argument("--vgg-weights")
    parser.add_argument("--random-vgg", action="store_true", help="time the VGG loss with random VGG weights")
    args = parser.parse_args(argv)
    print(f"device {args.device}, {torch.get_num_threads()} threads, batch {args.batch} x {args.crop}px, "
          f"{args.steps} timed steps")
    for phase in args.phase:
        for precision in args.precision:
            print(f"{phase:9s} {precision}: {measure(phase, precision, args):.3f} steps/s", flush=True)


if __name__ == "__main__":
    main()
