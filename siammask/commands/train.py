"""`siammask train --config configs/train/NAME.yaml --out DIR`: base stage, then refine; resumable."""
from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    import time

    from ..io.results import make_output_folder
    from ..training.config import load_train_config
    from ..training.loop import Budget, train

    cfg = load_train_config(args.config)
    make_output_folder(args.out, "run")
    budget = Budget(iterations=args.max_iterations,
                    deadline=time.monotonic() + args.time_limit * 60 if args.time_limit else None)
    final = train(cfg, args.out, budget=budget)
    if final is None:
        print(f"siammask: stopped at the budget; run the same command to resume from {args.out}")
        return 0
    print(f"siammask: trained weights: {final}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model (base stage, then refine) from built training sets")
    p.add_argument("--config", required=True, help="training config YAML (see configs/train/)")
    p.add_argument("--out", default="runs/train", help="run folder: resumable state, logs, checkpoints "
                                                       "(an unfinished run there is resumed)")
    p.add_argument("--time-limit", type=float, help="stop (resumably) after this many minutes")
    p.add_argument("--max-iterations", type=int, help="stop (resumably) after this many iterations")
    p.set_defaults(func=run)
