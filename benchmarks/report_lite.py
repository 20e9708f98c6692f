"""Issue 5 report: the shipped lite weights against the same model untrained and a static box,
on the shared DAVIS (J&F), OTB and UAV123 (success AUC) sequences, in one run.

    python benchmarks/report_lite.py [--out runs/report_lite] [--weights siammask/weights/default.pth]

The static-box baseline reports the first-frame box on every frame (its mask is that box filled):
what a tracker must beat to be worth running.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from siammask.checkpoint import load_checkpoint
from siammask.config import load_hp
from siammask.engines.registry import build_engine
from siammask.evaluation.runner import evaluate
from siammask.geometry.masks import box_corners
from siammask.model import SiamMask
from siammask.tracker import TargetState, Tracker, TrackResult, state_box

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SETS = (("davis", DATA / "DAVIS"), ("otb", DATA / "OTB"), ("uav", DATA / "UAV123_10fps"))


class StaticBox(Tracker):
    """Reports the initial box (filled as a mask) on every frame; runs no network."""

    def init(self, frame: np.ndarray, boxes: Sequence[Sequence[float]]) -> list[TargetState]:
        return [TargetState(np.array([x + w / 2, y + h / 2]), np.array([w, h], np.float64),
                            np.zeros(3), None, None) for x, y, w, h in boxes]

    def step(self, frame: np.ndarray, states: Sequence[TargetState]) -> tuple[list[TargetState], list[TrackResult]]:
        results = []
        for s in states:
            x, y, w, h = state_box(s)
            mask = np.zeros(frame.shape[:2], bool)
            mask[max(0, round(y)):max(0, round(y + h)), max(0, round(x)):max(0, round(x + w))] = True
            results.append(TrackResult((x, y, w, h), box_corners(*s.pos, *s.size), 1.0, 1.0, False, mask, (-1, -1)))
        return list(states), results


def trackers(weights: Path) -> dict[str, Tracker]:
    trained = load_checkpoint(weights)
    hp = load_hp(trained.config.get("hp", "davis"))
    torch.manual_seed(0)
    untrained = SiamMask(trained.variant).eval()
    return {
        "lite, trained (shipped)": Tracker(build_engine("torch", trained.model), hp),
        "lite, untrained": Tracker(build_engine("torch", untrained), hp),
        "static box": StaticBox(build_engine("torch", SiamMask(trained.variant)), hp),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/report_lite")
    parser.add_argument("--weights", default=str(Path(__file__).resolve().parents[1] / "siammask" / "weights" / "default.pth"))
    args = parser.parse_args()
    rows = []
    for name, tracker in trackers(Path(args.weights)).items():
        row = {"tracker": name}
        for dataset, root in SETS:
            if not root.is_dir():
                print(f"skipping {dataset}: {root} absent", file=sys.stderr)
                continue
            out = Path(args.out) / name.split(",")[0].replace(" ", "_") / name.split(",")[-1].strip().split(" ")[0] / dataset
            res = evaluate(tracker, dataset, root, out, {"tracker": name, "weights": args.weights})
            row[dataset] = res["overall"]
        rows.append(row)
    print("\n| tracker | DAVIS J | DAVIS F | DAVIS J&F | OTB AUC | OTB P@20 | UAV AUC | UAV P@20 | step ms (DAVIS) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        d, o, u = r.get("davis", {}), r.get("otb", {}), r.get("uav", {})
        print(f"| {r['tracker']} | {_f(d, 'J_mean')} | {_f(d, 'F_mean')} | {_f(d, 'JF_mean')} | {_f(o, 'auc')} "
              f"| {_f(o, 'precision')} | {_f(u, 'auc')} | {_f(u, 'precision')} | {_f(d, 'step_ms_median', 1)} |")
    return 0


def _f(d: dict, key: str, digits: int = 3) -> str:
    v = d.get(key)
    return "-" if v is None else f"{v:.{digits}f}"


if __name__ == "__main__":
    sys.exit(main())
