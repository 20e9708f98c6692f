"""`siammask fit-presence`: train the presence model (siammask.presence) for a model's template
kernels from the training data in a data root (the recipe of siammask/weights/presence_nano.npz)."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from .common import add_model_options, build_tracker


def run(args: argparse.Namespace) -> int:
    from ..errors import UserError
    from ..presence import save_presence
    from ..training.presence import STILL_SOURCES, VIDEO_SOURCES, fit_presence

    root = Path(args.data)
    missing = [folder for _, folder in VIDEO_SOURCES + STILL_SOURCES if not (root / folder).is_dir()]
    if missing:
        raise UserError(f"'{root}' lacks the training folders {', '.join(missing)} (the layout of ../shared/data)")
    out = Path(args.out)
    if out.is_dir() or not out.parent.is_dir():
        raise UserError(f"--out '{out}' must be a file in an existing folder")
    tracker = build_tracker(args)
    started = time.time()
    model, report = fit_presence(tracker, root, seed=args.seed, dims=args.dims)
    save_presence(model, out)
    log = {"variant": tracker.engine.variant, "seed": args.seed, "dims": args.dims,
           "seconds": round(time.time() - started, 1), **dataclasses.asdict(report)}
    print(json.dumps(log))
    print(f"siammask: presence model written to '{out}'", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fit-presence", help="train the presence model (lost/found) for a model's template kernels")
    p.add_argument("--data", required=True, help="data root with DAVIS-train, SegTrackv2, COCO-mini, COCO128-seg")
    p.add_argument("--out", required=True, help="the .npz file to write")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dims", type=int, default=32, choices=[0, *range(4, 257)], metavar="0|4..256",
                   help="dimensions of the linear map of the appearance vectors' layout half, trained first "
                        "(default 32, as the shipped nano model; 0: none, the raw layout)")
    add_model_options(p)
    p.set_defaults(func=run)
