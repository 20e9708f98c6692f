"""`siammask demo`: the main job on an embedded default.

With no arguments it renders a test video itself (a textured object moving over a textured
background, with the true mask of every frame), tracks the object with the shipped weights, writes
an annotated video and JSON lines, and reports how well the masks match the truth.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import UserError
from ..validate import box_text
from .common import add_model_options, build_tracker
from .outputs import track_to_outputs

DEMO_FRAMES = 150
DEMO_SIZE = (640, 360)
DEMO_SEED = 11
DEMO_OUT = "siammask-demo"
DEMO_INPUT = "input.avi"  # the generated video, kept beside the outputs (the README's Python example reads it)


def write_demo_input(out: Path, frames: int) -> tuple[Path, list]:
    """The video the demo tracks, written into `out`, and its truth (SyntheticFrame per frame)."""
    from ..synthetic import make_sequence, write_video

    truth = make_sequence(num_frames=frames, size=DEMO_SIZE, seed=DEMO_SEED)
    return write_video(truth, out / DEMO_INPUT), truth


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..evaluation.segmentation import jaccard

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    truth = None
    if args.source is None:
        video, truth = write_demo_input(out, args.frames)
        source = str(video)
        boxes = [truth[0].box]
        print(f"siammask: generated {source} ({args.frames} frames, {DEMO_SIZE[0]}x{DEMO_SIZE[1]})",
              file=sys.stderr)
    elif not args.box:
        raise UserError("with --source, give the target's first-frame box with --box X,Y,W,H")
    else:
        source, boxes = args.source, args.box
    ious: list[float] = []

    def score(fr) -> None:
        if truth is not None and fr.index > 0:
            ious.append(jaccard(fr.results[0].mask, truth[fr.index].mask))

    status = track_to_outputs(source, boxes, build_tracker(args), str(out / "demo.jsonl"),
                              str(out / "demo.mp4"), None, args.quiet, on_frame=score)
    print(f"siammask: wrote {out / 'demo.mp4'} and {out / 'demo.jsonl'}", file=sys.stderr)
    if ious:
        print(f"siammask: mask IoU against the generated truth: mean {np.mean(ious):.3f}, "
              f"median {np.median(ious):.3f}, min {np.min(ious):.3f} over {len(ious)} frames", file=sys.stderr)
    return status


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="track an object in a generated video (or --source) with the shipped weights")
    p.add_argument("--source", help="video file, image folder, camera index or URL instead of the generated video")
    p.add_argument("--box", action="append", type=box_text, help="first-frame box X,Y,W,H (with --source)")
    p.add_argument("--out", default=DEMO_OUT, help=f"output folder (default: ./{DEMO_OUT})")
    p.add_argument("--frames", type=int, default=DEMO_FRAMES, help="length of the generated video")
    add_model_options(p)
    p.set_defaults(func=run)
