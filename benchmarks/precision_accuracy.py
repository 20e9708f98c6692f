"""Accuracy cost of each reduced precision: per-frame mask IoU (and box shift) against float32.

Every candidate engine steps from the float32 tracker's state of the previous frame, so each
frame measures one step's precision error, not the divergence of two chaotic trajectories
(with untrained weights trajectories part after a few frames whatever the cause). Weights: the
reference's parity weights (sharp; deterministic, untrained), or --weights (e.g. the shipped lite
model, trained by this project). Sequences: the tennis clip and DAVIS 2016 val sequences (init
box: the first annotation's bounding box), first --frames frames. int8 is calibrated on a
different clip (DAVIS-train 'bear').

    python benchmarks/precision_accuracy.py [--weights FILE] [--frames 20] [--sequences blackswan,cows,...]
                                            [--json out.json]
"""
from __future__ import annotations

import dataclasses
import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch

from siammask.checkpoint import load_checkpoint
from siammask.config import load_hp
from siammask.data.formats.records import mask_box
from siammask.engines.onnxruntime_engine import OnnxRuntimeEngine
from siammask.engines.registry import build_engine
from siammask.engines.torch_engine import TorchEngine
from siammask.evaluation.segmentation import jaccard
from siammask.export.exporter import export_model
from siammask.model import variant_spec
from siammask.tracker import Tracker

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from reference import DATA, TENNIS, TENNIS_BOX, parity_state_dict  # noqa: E402

DAVIS = DATA / "DAVIS"
CALIBRATION = DATA / "DAVIS-train"
CANDIDATES = (("torch", "bf16"), ("torch-compile", "fp32"), ("torch-compile", "bf16"), ("onnxruntime", "fp32"),
              ("onnxruntime", "fp16"), ("onnxruntime", "int8"))


def first_box(annotation: Path) -> tuple[float, float, float, float]:
    return mask_box(cv2.imread(str(annotation), cv2.IMREAD_GRAYSCALE) > 0)


def davis_clip(root: Path, name: str, frames: int) -> tuple[list[np.ndarray], tuple[float, ...]]:
    files = sorted((root / "JPEGImages" / "480p" / name).glob("*.jpg"))[:frames]
    annotation = sorted((root / "Annotations" / "480p" / name).glob("*.png"))[0]
    return [cv2.imread(str(f)) for f in files], first_box(annotation)


def compare(reference: Tracker, others: dict[str, Tracker], frames: list[np.ndarray], box) -> dict[str, list[dict]]:
    """Per candidate and frame: mask IoU, largest box-coordinate shift (px), same grid position."""
    (state,) = reference.init(frames[0], [box])
    starts = {name: t.init(frames[0], [box])[0] for name, t in others.items()}
    rows: dict[str, list[dict]] = {name: [] for name in others}
    for frame in frames[1:]:
        (next_state,), (ref,) = reference.step(frame, [state])
        for name, tracker in others.items():
            start = dataclasses.replace(starts[name], pos=state.pos, size=state.size)
            _, (res,) = tracker.step(frame, [start])
            shift = float(np.abs(np.subtract(res.box, ref.box)).max())
            rows[name].append({"iou": jaccard(res.mask, ref.mask), "box_shift": shift,
                               "same_pos": res.pos_yx == ref.pos_yx})
        state = next_state
    return rows


def engines(weights: Path, calibration_frames: int) -> dict[str, object]:
    model = load_checkpoint(weights).model
    found = {}
    for name, precision in CANDIDATES:
        label = f"{name} {precision}"
        print(f"preparing {label} ...", file=sys.stderr)
        if name.startswith("torch"):
            found[label] = build_engine(name, model, "cpu", precision)
            continue
        with tempfile.TemporaryDirectory() as folder:
            calibration = davis_clip(CALIBRATION, "bear", calibration_frames) if precision == "int8" else None
            export_model(model, Path(folder), precision=precision, calibration=calibration)
            found[label] = OnnxRuntimeEngine(folder)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20, help="frames per sequence, init included")
    parser.add_argument("--sequences", default="blackswan,cows,dog,libby",
                        help="DAVIS val sequences, or 'all' for every one in ../shared/data/DAVIS")
    parser.add_argument("--weights", help="checkpoint (default: the reference's parity weights, sharp)")
    parser.add_argument("--json", help="write per-frame numbers here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(args.weights or Path(tmp) / "parity_sharp.pth")
        if not args.weights:
            torch.save(parity_state_dict("sharp"), weights)
        ckpt = load_checkpoint(weights)
        hp = load_hp(ckpt.config.get("hp") or variant_spec(ckpt.variant).default_hp)
        reference = Tracker(TorchEngine(ckpt.model), hp)
        others = {label: Tracker(engine, hp) for label, engine in engines(weights, 12).items()}
    clips = {"tennis": ([cv2.imread(str(p)) for p in sorted(TENNIS.glob("*.jpg"))[:args.frames]], TENNIS_BOX)}
    names = (sorted(p.name for p in (DAVIS / "JPEGImages" / "480p").iterdir()) if args.sequences == "all"
             else args.sequences.split(","))
    clips.update({name: davis_clip(DAVIS, name, args.frames) for name in names})
    results = {}
    for clip, (frames, box) in clips.items():
        print(f"comparing on {clip} ...", file=sys.stderr)
        results[clip] = compare(reference, others, frames, box)
    what = args.weights or "parity weights (sharp, untrained)"
    print(f"{what}, {ckpt.variant} model, frames 1-{args.frames - 1} of each clip, each step from the fp32 state\n")
    print("| clip | engine precision | mask IoU mean | IoU min | frames IoU >= 0.95 | same grid pos "
          "| max box shift px |")
    print("|---|---|---|---|---|---|---|")
    for clip, per in results.items():
        for label, rows in per.items():
            ious = [r["iou"] for r in rows]
            print(f"| {clip} | {label} | {statistics.mean(ious):.3f} | {min(ious):.3f} | "
                  f"{sum(v >= 0.95 for v in ious)}/{len(ious)} | {sum(r['same_pos'] for r in rows)}/{len(rows)} | "
                  f"{max(r['box_shift'] for r in rows):.1f} |")
    print("\n| engine precision | clips | frames | mask IoU mean | IoU median | frames IoU >= 0.95 |")
    print("|---|---|---|---|---|---|")
    for label in next(iter(results.values())):
        ious = [r["iou"] for per in results.values() for r in per[label]]
        print(f"| {label} | {len(results)} | {len(ious)} | {statistics.mean(ious):.3f} | "
              f"{statistics.median(ious):.3f} | {sum(v >= 0.95 for v in ious)}/{len(ious)} |")
    print("\ntennis, mask IoU per frame vs fp32:")
    for label, rows in results["tennis"].items():
        print(f"- {label}: " + " ".join(f"{r['iou']:.2f}" for r in rows))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
