"""Time one tracker step (sharp by default) by stage, ours against the original's way of computing it.

Both run in the same process on the same frame and geometry (tennis frame 1 at the init box
300,110,165,255 when ../shared is there, else a synthetic 854x480 frame with the same box).
The baseline repeats the original's work per frame: kernel convs of the template, the
3969-channel mask head on all 625 positions, plain (not channels-last) layout, a padded copy of the whole frame for the crop,
and OpenCV's own warpAffine. Speed does not depend on the weight values, so seeded random
weights are used.

    python benchmarks/bench_step.py [--steps 30] [--threads 2] [--json out.json]
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from siammask.config import load_hp
from siammask.engines.torch_engine import TorchEngine
from siammask.geometry.crop import crop_and_resize, crop_origin, search_scale, template_side, to_chw_float
from siammask.geometry.masks import mask_polygon, mask_window, paste_back, paste_matrix
from siammask.geometry.scoring import decode, fg_scores, pick_best, size_penalty
from siammask.model import build_model
from siammask.synthetic import make_sequence
from siammask.tracker import Tracker

BOX = (300, 110, 165, 255)
TENNIS = Path(__file__).resolve().parents[2] / "shared" / "data" / "frames" / "tennis"
STAGES = ("crop", "trunk", "heads", "decode", "refine", "paste-back", "polygon")


def load_frames() -> tuple[np.ndarray, np.ndarray, str]:
    files = sorted(TENNIS.glob("*.jpg"))
    if len(files) >= 2:
        return cv2.imread(str(files[0])), cv2.imread(str(files[1])), "tennis frames 0-1 (854x480)"
    seq = make_sequence(num_frames=2, size=(854, 480), seed=0)
    return seq[0].image, seq[1].image, "synthetic 854x480 frame"


def crop_original_style(image, center, side, out_size, fill):
    """The original's crop: pad a copy of the whole frame, then slice and resize."""
    sz = int(side)
    x0, y0 = crop_origin(center, side)
    h, w = image.shape[:2]
    left, top = max(0, -x0), max(0, -y0)
    right, bottom = max(0, x0 + sz - w), max(0, y0 + sz - h)
    padded = np.zeros((h + top + bottom, w + left + right, 3), np.uint8)
    padded[...] = np.asarray(fill).astype(np.uint8)
    padded[top:top + h, left:left + w] = image
    patch = padded[y0 + top:y0 + top + sz, x0 + left:x0 + left + sz]
    return cv2.resize(patch, (out_size, out_size)) if sz != out_size else patch


class Clock:
    """Collects per-stage durations in milliseconds."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {s: [] for s in STAGES}
        self._t = 0.0

    def start(self) -> None:
        self._t = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.samples[stage].append((now - self._t) * 1000)
        self._t = now


@torch.inference_mode()
def one_step(model, frame, pos, size, avg, kernels_z, anchors, window, cfg, clock, original: bool):
    """One tracker step split into stages; `original` switches to the original's per-frame work."""
    frame_wh = (frame.shape[1], frame.shape[0])
    clock.start()
    s_x, scale = search_scale(size)
    side = float(round(s_x))
    crop = (crop_original_style if original else crop_and_resize)(frame, pos, side, 255, avg)
    x = torch.from_numpy(to_chw_float([crop]))
    if not original:  # as TorchEngine feeds it
        x = x.contiguous(memory_format=torch.channels_last)
    clock.lap("crop")
    p0, p1, p2, p3 = model.trunk(x)
    clock.lap("trunk")
    f = model.adjust(p3)
    if original:  # kernels from the template features on every frame, full mask head
        zf = kernels_z
        kernels = (model.cls_head.kernel(zf), model.loc_head.kernel(zf), model.mask_head.kernel(zf))
    else:
        kernels = kernels_z
    cls = model.cls_head(f, kernels[0])
    loc = model.loc_head(f, kernels[1])
    corr = model.mask_head.correlate(f, kernels[2])
    if original:
        model.mask_head.head(corr)
    clock.lap("heads")
    score = fg_scores(cls[0].numpy())
    boxes = decode(loc[0].numpy(), anchors)
    penalty = size_penalty(boxes, size * scale, cfg.penalty_k)
    best = pick_best(score, penalty, window, cfg.window_influence)
    _, yy, xx = np.unravel_index(best, (5, 25, 25))
    clock.lap("decode")
    logits = model.refine(p0, p1, p2, corr, torch.tensor([[yy, xx]]))[0].numpy()
    clock.lap("refine")
    prob = (1 / (1 + np.exp(-logits))).astype(np.float32)
    m = paste_matrix(mask_window((pos[0] - side / 2, pos[1] - side / 2), side, (yy, xx)), 127, frame_wh)
    if original:
        full = cv2.warpAffine(prob, m, frame_wh, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                              borderValue=-1)
        clock.lap("paste-back")
        mask_polygon(full, cfg.seg_thr)
    else:
        part = paste_back(prob, m, frame_wh)
        clock.lap("paste-back")
        mask_polygon(part.values, cfg.seg_thr, origin=(part.x, part.y))
    clock.lap("polygon")


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variant", default="sharp", choices=["sharp", "lite"],
                        help="model with refine to time (default: sharp, the published model)")
    parser.add_argument("--json", help="write the numbers as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model(args.variant).eval()
    cfg = load_hp("davis")
    frame0, frame1, what = load_frames()
    baseline_model = copy.deepcopy(model)  # plain layout, as the original runs it
    tracker = Tracker(TorchEngine(model), cfg)  # converts `model` to channels-last
    (state,) = tracker.init(frame0, [BOX])
    pos, size, avg = state.pos, state.size, state.avg_color
    with torch.inference_mode():
        z = torch.from_numpy(to_chw_float([crop_and_resize(frame0, pos, template_side(size), 127, avg)]))
        zf = baseline_model.adjust(baseline_model.trunk(z)[3])
    kernels = (state.features.cls, state.features.loc, state.features.mask)
    clocks = {"original-style": Clock(), "ours": Clock()}
    for i in range(args.steps + 3):  # 3 warm-up steps, interleaved so both see the same machine state
        for name, clock in clocks.items():
            original = name == "original-style"
            one_step(baseline_model if original else model, frame1, pos, size, avg, zf if original else kernels, tracker.grid,
                     tracker.window, cfg, clock, original)
    whole = []
    for i in range(args.steps + 3):
        t = time.perf_counter()
        tracker.step(frame1, [state])
        whole.append((time.perf_counter() - t) * 1000)
    whole = whole[3:]
    rows = {name: {s: median(c.samples[s][3:]) for s in STAGES} for name, c in clocks.items()}
    for r in rows.values():
        r["sum"] = sum(r[s] for s in STAGES)
    print(f"{args.variant} model; frame: {what}; box {BOX}; torch {torch.__version__}, {args.threads} threads; "
          f"median of {args.steps} steps (ms)\n")
    print("| stage | original-style | ours | ratio |\n|---|---|---|---|")
    for s in (*STAGES, "sum"):
        a, b = rows["original-style"][s], rows["ours"][s]
        print(f"| {s} | {a:.1f} | {b:.1f} | {a / b:.2f}x |")
    print(f"\nours, whole Tracker.step: median {median(whole):.1f} ms, "
          f"p90 {np.percentile(whole, 90):.1f} ms ({1000 / median(whole):.1f} frames/s)")
    if args.json:
        Path(args.json).write_text(json.dumps({"variant": args.variant, "frame": what, "threads": args.threads, "steps": args.steps,
                                               "stages_ms": rows, "step_ms_median": median(whole)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
