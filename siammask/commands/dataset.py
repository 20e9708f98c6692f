"""`siammask dataset build`: turn one annotated dataset into a pre-cropped training set."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from itertools import islice
from pathlib import Path

from ..data.formats import FORMAT_NAMES
from ..data.names import MODES, NEEDS_OTHER
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


def run_occlude(args: argparse.Namespace) -> int:
    import json

    import cv2
    import numpy as np

    from ..data.layouts.regions import write_otb_boxes
    from ..data.occlude import occlude
    from ..validate import frame_span

    if args.other and args.mode not in NEEDS_OTHER:
        raise UserError(f"--other is for --mode {' and '.join(NEEDS_OTHER)}, not {args.mode}")
    frames, boxes = _read_box_sequence(Path(args.root))
    span = frame_span(args.start, args.length, len(frames))
    other = _read_frames(Path(args.other)) if args.other else None
    try:
        result = occlude(frames, boxes, span.start, len(span), args.mode, np.random.default_rng(args.seed), other)
    except ValueError as error:
        raise UserError(f"--mode {args.mode}: {error}") from None
    out = _empty_folder(Path(args.out))
    (out / "img").mkdir()
    digits = max(4, len(str(len(result.frames))))
    for i, frame in enumerate(result.frames, start=1):
        if not cv2.imwrite(str(out / "img" / f"{i:0{digits}d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 95]):
            raise UserError(f"cannot write '{out / 'img'}'")
    write_otb_boxes(out / "groundtruth_rect.txt", result.boxes)
    meta = {"source": str(Path(args.root).resolve()), "mode": args.mode, "seed": args.seed,
            "other": str(Path(args.other).resolve()) if args.other else None,
            "frames": len(result.frames), "absent": [f"{span.start + 1}-{span.stop}"]}
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"siammask: wrote {len(result.frames)} frames to {out} with the target absent at frames "
          f"{span.start + 1}-{span.stop} ({args.mode})", file=sys.stderr)
    return 0


def _read_box_sequence(root: Path) -> tuple[list, np.ndarray]:
    """The frames and 0-based boxes of one OTB/UAV123 sequence folder with a single target."""
    from ..data.layouts.sequences import otb_sequences

    sequences = otb_sequences(root)
    if len(sequences) != 1 or len(sequences[0].targets) != 1:
        raise UserError(f"--root {root} must be one OTB/UAV sequence (img/ and one groundtruth_rect.txt)")
    return _load_images(sequences[0].frames), sequences[0].targets[1]


def _read_frames(folder: Path) -> list:
    """The images of FOLDER/img/ (a sequence) or of FOLDER itself."""
    from ..data.layouts.images import list_images

    return _load_images(list_images(folder / "img" if (folder / "img").is_dir() else folder))


def _load_images(paths: tuple[Path, ...]) -> list:
    import cv2

    images = []
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise UserError(f"cannot read image '{path}'")
        images.append(image)
    return images


def _empty_folder(path: Path) -> Path:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UserError(f"--out {path} exists and is not an empty folder")
    path.mkdir(parents=True, exist_ok=True)
    return path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dataset", help="prepare training data")
    actions = p.add_subparsers(dest="action", required=True)
    b = actions.add_parser("build", help="crop every annotated object of a dataset into a training set "
                                         "(OUT/index.json + OUT/crops/)")
    b.add_argument("--format", required=True, choices=sorted(FORMAT_NAMES), help="layout of the source dataset")
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
    o = actions.add_parser("occlude", help="make the target of an OTB/UAV sequence absent for a span of frames "
                                           "(covered, cut away or out of view); writes an OTB-layout sequence "
                                           "with NaN rows where it is absent")
    o.add_argument("--root", required=True, help="one OTB/UAV sequence: ROOT/img/*.jpg, ROOT/groundtruth_rect.txt")
    o.add_argument("--out", required=True, help="folder to write (new or empty): img/NNNN.jpg, "
                                                "groundtruth_rect.txt, meta.json")
    o.add_argument("--start", required=True, type=_at_least(2),
                   help="first absent frame, numbered from 1 like img/0001.jpg (frame 1 must show the target)")
    o.add_argument("--length", required=True, type=_at_least(1), help="number of absent frames")
    o.add_argument("--mode", required=True, choices=MODES,
                   help="grey/noise: a block over the target; patch: background of the same frame over it; "
                        "occluder: another scene's pixels over it; cut: the frames replaced by another scene's; "
                        "exit: a smaller view that pans away from the target and back")
    o.add_argument("--other", help="another sequence or image folder, for --mode occluder and cut")
    o.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    o.set_defaults(func=run_occlude)
