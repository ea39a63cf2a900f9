"""The int8 calibration tables shipped beside the models, from the training split (never the validation one).

    python -m training.calibrate_int8 --data /path/CSun_Hays80 /path/CUrban100 --models srresnet srgan

Writes srgan_fast/pretrained/<model>.int8.json (package data): with it ``precision="int8"`` works on a fresh
install with no images. Crops are drawn as for a user's folder (srgan_fast.backends.native_int8.calibrate).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from srgan_fast.backends import native_int8
from srgan_fast.weights import load_weights
from training.data import list_images, split_train_val

PRETRAINED = Path(__file__).resolve().parents[1] / "srgan_fast" / "pretrained"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", required=True, help="the training folders")
    parser.add_argument("--models", nargs="+", default=["srresnet", "srgan"])
    parser.add_argument("--val-every", type=int, default=10, help="the split's held-out stride (as in training)")
    parser.add_argument("--method", default=native_int8.METHOD)
    args = parser.parse_args(argv)
    train, _ = split_train_val(list_images(args.data), args.val_every)
    for model in args.models:
        table = native_int8.calibrate(load_weights(model), train, args.method)
        table["images"] = f"{len(train)} training-split images of {', '.join(Path(d).name for d in args.data)}"
        native_int8.write_table(PRETRAINED / f"{model}.int8.json", table)
        print(f"{model}: {len(table['ranges'])} ranges from {table['tiles']} crops -> {model}.int8.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
