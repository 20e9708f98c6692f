"""What a lost frame costs against a tracking frame: `Tracker.step` on one target, timed on the
frames where it is tracked and on the frames where it is gone (re-detection searching
redetect_tiles windows of the frame, verifying redetect_peaks places in each), in one run.

    python benchmarks/bench_lost.py [--size 1280x720] [--passes 3] [--weights FILE] [...model options]

A generated sequence (siammask.synthetic, upscaled to --size) whose target is cut away for 20 of
its 60 frames (siammask.data.occlude `cut`, to another generated scene), so nothing from ../shared
is needed. Prints the median ms of each kind of frame and their ratio, with the CPU model.
"""
from __future__ import annotations

import argparse
import sys

import cv2
import numpy as np

from siammask.commands.common import add_model_options, build_tracker
from siammask.data.occlude import occlude
from siammask.evaluation.timing import cpu_name
from siammask.synthetic import make_sequence

FRAMES, SPAN = 60, (20, 20)


def clip(width: int, height: int) -> tuple[list[np.ndarray], np.ndarray]:
    """The generated sequence at width x height, its target cut away on SPAN."""
    scale = width / 320
    seq, other = make_sequence(FRAMES, seed=3), make_sequence(FRAMES, seed=8)
    frames = [cv2.resize(f.image, (width, height)) for f in seq]
    boxes = np.array([f.box for f in seq]) * [scale, height / 240, scale, height / 240]
    others = [cv2.resize(f.image, (width, height)) for f in other]
    out = occlude(frames, boxes, *SPAN, "cut", np.random.default_rng(0), others)
    return list(out.frames), out.boxes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_options(parser)
    parser.add_argument("--size", default="1280x720", help="frame size WxH (default 1280x720)")
    parser.add_argument("--passes", type=int, default=3)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    tracker = build_tracker(args)
    frames, boxes = clip(width, height)
    times: dict[str, list[float]] = {"tracking": [], "lost": []}
    for _ in range(args.passes):
        states = tracker.init(frames[0], [boxes[0]])
        for frame in frames[1:]:
            start = cv2.getTickCount()
            states, results = tracker.step(frame, states)
            ms = (cv2.getTickCount() - start) / cv2.getTickFrequency() * 1000
            times["lost" if results[0].lost else "tracking"].append(ms)
    print(f"{cpu_name()}; {width}x{height}; redetect_tiles {tracker.cfg.redetect_tiles}, "
          f"redetect_peaks {tracker.cfg.redetect_peaks}; engine {tracker.engine.name}")
    medians = {k: float(np.median(v)) for k, v in times.items() if v}
    for kind, v in times.items():
        if v:
            print(f"{kind}: median {medians[kind]:.2f} ms over {len(v)} frames")
    if len(medians) == 2:
        print(f"a lost frame costs {medians['lost'] / medians['tracking']:.1f}x a tracking frame")
    return 0


if __name__ == "__main__":
    sys.exit(main())
