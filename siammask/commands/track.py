"""`siammask track`: follow targets through a video, image folder, camera or stream."""
from __future__ import annotations

import argparse

from ..validate import box_text
from .common import add_model_options, build_tracker
from .outputs import track_to_outputs


def run(args: argparse.Namespace) -> int:
    return track_to_outputs(args.source, args.box, build_tracker(args), args.json, args.output, args.masks,
                            args.quiet)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("track", help="track targets through a video, image folder, camera or stream")
    p.add_argument("source", help="video file, folder of images, camera index (0) or rtsp:// / http:// URL")
    p.add_argument("--box", action="append", type=box_text, required=True,
                   help="target in the first frame as X,Y,W,H pixels; repeat for several targets")
    add_model_options(p)
    p.add_argument("--output", help="annotated video to write (.mp4 or .avi)")
    p.add_argument("--json", help="JSON lines to write: one line per frame and target")
    p.add_argument("--masks", help="folder for per-frame mask PNGs (NNNNN.png; one subfolder per target "
                                   "when there are several)")
    p.set_defaults(func=run)
