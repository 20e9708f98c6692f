"""`siammask dataset build`: turn one annotated dataset into a pre-cropped training set."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from itertools import islice
from pathlib import Path

from ..errors import UserError


def _at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number no smaller than `minimum`."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number >= {minimum}")
        return value
    return parse


def run_build(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..data.build import build_dataset
    from ..data.formats import FORMATS

    root = Path(args.root)
    if not root.exists():
        raise UserError(f"--root {root} does not exist")
    frames = FORMATS[args.format](root)
    if args.limit is not None:
        frames = islice(frames, args.limit)
    try:
        with tqdm(frames, desc=f"cropping {args.format}", unit="frame", total=args.limit,
                  disable=args.quiet, file=sys.stderr) as bar:
            summary = build_dataset(bar, Path(args.out), crop_size=args.crop_size, source_format=args.format,
                                    source_root=root, overwrite=args.overwrite)
    except KeyboardInterrupt:
        print(f"siammask: interrupted; {args.out} has no index.json and is incomplete", file=sys.stderr)
        return 130
    for line in summary.report().splitlines():
        print(f"siammask: {line}", file=sys.stderr)
    return 0


def run_synthetic(args: argparse.Namespace) -> int:
    from ..synthetic import make_training_sequences, write_davis_layout

    root = write_davis_layout(make_training_sequences(args.sequences, args.frames, args.seed), args.root)
    print(f"siammask: wrote {args.sequences} generated sequences of {args.frames} frames in DAVIS layout to {root}; "
          f"crop them with: siammask dataset build --format davis --root {root} --out OUT", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from ..data.formats import FORMATS

    p = sub.add_parser("dataset", help="prepare training data")
    actions = p.add_subparsers(dest="action", required=True)
    b = actions.add_parser("build", help="crop every annotated object of a dataset into a training set "
                                         "(OUT/index.json + OUT/crops/)")
    b.add_argument("--format", required=True, choices=sorted(FORMATS), help="layout of the source dataset")
    b.add_argument("--root", required=True, help="the source dataset's folder")
    b.add_argument("--out", required=True, help="folder for the training set (new or empty)")
    b.add_argument("--crop-size", type=_at_least(127), default=511,
                   help="side of the square crops in pixels (default: 511)")
    b.add_argument("--limit", type=_at_least(1), help="process at most N annotated frames (for quick tries)")
    b.add_argument("--overwrite", action="store_true", help="replace a previous build in --out")
    b.set_defaults(func=run_build)
    g = actions.add_parser("synthetic", help="generate textured-object sequences with exact masks, in DAVIS layout")
    g.add_argument("--root", required=True, help="folder to write (JPEGImages/, Annotations/, ImageSets/)")
    g.add_argument("--sequences", type=_at_least(1), default=80, help="number of sequences (default: 80)")
    g.add_argument("--frames", type=_at_least(2), default=30, help="frames per sequence (default: 30)")
    g.add_argument("--seed", type=int, default=123, help="random seed (default: 123)")
    g.set_defaults(func=run_synthetic)
