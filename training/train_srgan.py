"""Phase 2: SRGAN, the perceptual generator, fine-tuned adversarially from SRResNet weights.

    python -m training.train_srgan --init runs/srresnet/last.safetensors --data DIR... --run-dir runs/srgan \\
        --steps 20000 --lr-drop-at 10000 [--vgg-weights vgg19.safetensors] [--resume]

Per step (k = 1, as the paper): one discriminator step on HR vs the detached SR batch, then one generator step
on content loss + 1e-3 × (-log D(G(LR))). Adam(0.9, 0.999) for both, lr 1e-4 until --lr-drop-at, then 1e-5.
Content loss: VGG19 φ5,4 MSE with --vgg-weights (features divided by 12.75 as the paper); without it, pixel
MSE + discriminator feature matching (see training/losses.py), and the log says so.
--init takes a phase-1 checkpoint (BN kept, trained on) or an exported weights file / shipped name (folded, no BN).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from srgan_fast.reference.model import Discriminator, Generator
from srgan_fast.weights import WeightsError, load_weights
from training.checkpoint import (
    is_checkpoint,
    load_checkpoint,
    load_module_state,
    read_checkpoint_meta,
    read_raw_metadata,
    save_checkpoint,
)
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
from training.losses import (
    PixelFeatureMatchingLoss,
    VggContentLoss,
    discriminator_logits,
    discriminator_loss,
    generator_adversarial_loss,
)
from training.vgg import HOW_TO_GET, VggWeightsError, load_vgg19_features

DEFAULTS = dict(COMMON_DEFAULTS, steps=20000, lr=1e-4, lr_low=1e-5, lr_drop_at=None, adversarial_weight=1e-3,
                fm_weight=0.1, disc_channels=64, vgg_weights=None, phase="srgan")
LOG_FIELDS = ["step", "loss", "lr", "steps_per_s", "d_loss", "adversarial", "content", "content_vgg",
              "content_pixel", "content_fm", "d_real", "d_fake", "val_psnr_y", "val_bicubic_psnr_y", "val_grad_ratio"]


def init_generator(init: str) -> tuple[Generator, dict]:
    """The starting generator and what it was: (module, config facts about its architecture and training)."""
    path = Path(init)
    if path.is_file() and is_checkpoint(path):
        meta = read_checkpoint_meta(path)
        source = meta["config"]
        generator = Generator(source["num_blocks"], source["channels"], source.get("batch_norm", True))
        generator.load_state_dict(load_module_state(path, "generator"))
        return generator, dict(num_blocks=source["num_blocks"], channels=source["channels"],
                               batch_norm=source.get("batch_norm", True), init_config=source,
                               init_step=meta["step"] + (source.get("init_step", 0) if source.get("phase") == "srgan"
                                                         else 0))
    try:
        weights = load_weights(init)
    except WeightsError as exc:
        raise SystemExit(f"error: --init {init!r} is neither a training checkpoint nor a weights file "
                         f"({exc})") from None
    if weights.network.architecture != "srresnet":
        raise SystemExit(f"error: --init {init!r} holds a {weights.network.architecture}; phase 2 trains the SRGAN "
                         "generator (srresnet)")
    num_blocks, channels = weights.network.params["num_blocks"], weights.network.params["channels"]
    generator = Generator(num_blocks, channels, batch_norm=False)
    generator.load_state_dict({k: torch.from_numpy(v) for k, v in weights.tensors.items()})
    return generator, dict(num_blocks=num_blocks, channels=channels, batch_norm=False,
                           init_step=int(weights.metadata.get("training_steps", 0)),
                           init_config={"exported": weights.metadata.get("training_recipe", weights.source)})


def content_loss_for(config: dict):
    if config.get("vgg_weights"):
        try:
            vgg = load_vgg19_features(config["vgg_weights"]).to(config["device"])
        except VggWeightsError as exc:
            raise SystemExit(f"error: --vgg-weights: {exc}") from None
        loss = VggContentLoss(vgg.to(memory_format=torch.channels_last))
    else:
        loss = PixelFeatureMatchingLoss(config["fm_weight"])
        print(f"no --vgg-weights given, so the content loss is pixel MSE + {config['fm_weight']} x discriminator "
              f"feature matching instead of the paper's VGG19 φ5,4 loss. {HOW_TO_GET}")
    print(f"content loss: {loss.name}")
    return loss


def learning_rate(config: dict, step: int) -> float:
    drop_at = config["lr_drop_at"] if config["lr_drop_at"] is not None else config["steps"] // 2
    return config["lr"] if step < drop_at else config["lr_low"]


def build(config: dict, generator: Generator):
    """Both networks (channels_last, training mode) and their Adam optimizers."""
    torch.manual_seed(config["seed"])
    discriminator = Discriminator(config["disc_channels"])
    nets = {"generator": generator, "discriminator": discriminator}
    for net in nets.values():
        net.to(config["device"]).to(memory_format=torch.channels_last).train()
    optimizers = {name: torch.optim.Adam(net.parameters(), lr=config["lr"], betas=(0.9, 0.999))
                  for name, net in nets.items()}
    return nets, optimizers


def train_step(nets, optimizers, scalers, content_loss, lr_batch, hr_batch, config: dict, step: int) -> dict:
    """One discriminator step, then one generator step. LR [B, 3, h, w], HR [B, 3, 4h, 4w], both in [0, 1]."""
    generator, discriminator = nets["generator"], nets["discriminator"]
    lr = learning_rate(config, step)
    for optimizer in optimizers.values():
        set_learning_rate(optimizer, lr)
    lr_batch, hr_batch = batch_to_device(lr_batch, config), batch_to_device(hr_batch, config)
    with autocast(config):
        sr = generator(lr_batch)
        real_logits = discriminator(hr_batch)
        fake_logits = discriminator(sr.detach())
    d_loss = discriminator_loss(real_logits, fake_logits)
    optimizer_step(d_loss, optimizers["discriminator"], scalers["discriminator"])

    discriminator.requires_grad_(False)  # the generator step must not leave gradients in D
    with autocast(config):
        fake_maps = discriminator.feature_maps(sr)
        adversarial = generator_adversarial_loss(discriminator_logits(discriminator, fake_maps))
        content, parts = content_loss(sr, hr_batch, discriminator, fake_maps)
    g_loss = content + config["adversarial_weight"] * adversarial
    optimizer_step(g_loss, optimizers["generator"], scalers["generator"])
    discriminator.requires_grad_(True)
    return dict(loss=g_loss.item(), lr=lr, d_loss=d_loss.item(), adversarial=adversarial.item(),
                content=content.item(), d_real=torch.sigmoid(real_logits.float()).mean().item(),
                d_fake=torch.sigmoid(fake_logits.float()).mean().item(), **parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--init", help="phase-1 checkpoint (RUN_DIR/last.safetensors), weights file or model name")
    parser.add_argument("--vgg-weights", help="torchvision VGG19 weights (.safetensors or .pth); see training/vgg.py")
    parser.add_argument("--lr-low", type=float, help="lr after --lr-drop-at (paper: 1e-5)")
    parser.add_argument("--lr-drop-at", type=int, help="step where lr drops to --lr-low (default: half of --steps)")
    parser.add_argument("--adversarial-weight", type=float, help="weight of -log D(G(x)) (paper: 1e-3)")
    parser.add_argument("--fm-weight", type=float, help="feature-matching weight of the no-VGG content loss")
    parser.add_argument("--disc-channels", type=int, help="discriminator base width (paper: 64)")
    args = parser.parse_args(argv)

    run_dir, ckpt, config = open_run(args, DEFAULTS)
    if args.resume:
        generator = Generator(config["num_blocks"], config["channels"], config["batch_norm"])
    elif not config.get("init"):
        raise SystemExit("error: --init is required: a phase-1 checkpoint (e.g. runs/srresnet/last.safetensors), "
                         "an exported .safetensors file or a shipped model name")
    else:
        generator, facts = init_generator(config["init"])
        config.update(facts)
    content_loss = content_loss_for(config)
    config["content_loss"] = content_loss.name
    save_config(run_dir, config)

    nets, optimizers = build(config, generator)
    scalers = {name: make_grad_scaler(config) for name in nets}
    start = 0
    if args.resume:
        start = load_checkpoint(ckpt, nets, optimizers)
        restore_scalers(read_raw_metadata(ckpt), scalers)
        print(f"resumed at step {start}")
    log = CsvLog(run_dir / "log.csv", LOG_FIELDS)

    def checkpoint(step: int) -> None:
        save_checkpoint(ckpt, step, config, nets, optimizers, scaler_metadata(scalers))

    step = run_training("srgan", config, start, nets["generator"],
                        lambda lr_batch, hr_batch, step: train_step(nets, optimizers, scalers, content_loss,
                                                                    lr_batch, hr_batch, config, step),
                        checkpoint, log, validate_at_start=True, max_minutes=args.max_minutes)
    print(f"stopped at step {step}; checkpoint {ckpt}")


if __name__ == "__main__":
    main()
