"""`siammask train --config configs/train/NAME.yaml --out DIR`: base stage, then refine; resumable."""
from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    from ..training.config import load_train_config
    from ..training.loop import train

    final = train(load_train_config(args.config), args.out)
    print(f"siammask: trained weights: {final}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model (base stage, then refine) from built training sets")
    p.add_argument("--config", required=True, help="training config YAML (see configs/train/)")
    p.add_argument("--out", default="runs/train", help="run folder: resumable state, logs, checkpoints "
                                                       "(an unfinished run there is resumed)")
    p.set_defaults(func=run)
