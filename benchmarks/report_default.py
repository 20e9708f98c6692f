"""Our tracker beside OpenCV's TrackerNano and CSRT on the shared benchmark sequences, in one table.

    python benchmarks/report_default.py [--weights FILE] [--nano-dir DIR] [--out runs/report_default]
                                        [--threads 2]

Each tracker runs through `siammask eval` itself (the same protocols, in this one process, with the
same thread count for PyTorch and OpenCV): DAVIS (the 12 shared val sequences: J, F, J&F; OpenCV's
masks are their boxes filled), OTB Crossing and UAV123_10fps person12 / wakeboard7 (one-pass success
AUC), VOT2016 bag (supervised: failures); and in a second table the long-term clips of LT/ (one
pass, never reset: VOT-LT tracking F-score, precision and recall with the tracker's presence as its
confidence, share of absent and of visible frames flagged lost, returns re-acquired within 30
frames and the longest delay). Time per frame is the median tracker step over the
one-target sets (OTB, UAV, VOT) and over DAVIS (all objects of a frame in one step). Without
--weights, ours is the shipped default weights. Results stay in OUT/TRACKER/DATASET (a second run
reuses them; delete OUT to measure again); the table is also written to OUT/report.md.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from siammask.cli import main as siammask
from siammask.evaluation.baselines import DEFAULT_NANO_DIR
from siammask.evaluation.timing import cpu_name

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SETS = {"davis": DATA / "DAVIS", "otb": DATA / "OTB", "uav": DATA / "UAV123_10fps", "vot": DATA / "VOT2016",
        "lt": DATA / "LT"}
ONE_TARGET = ("otb", "uav", "vot")
HEADER = ("tracker", "DAVIS J", "DAVIS F", "DAVIS J&F", "OTB Crossing AUC", "UAV person12 AUC",
          "UAV wakeboard7 AUC", "UAV mean AUC", "VOT bag failures", "ms/frame, 1 target", "ms/frame, DAVIS")
LT_HEADER = ("tracker", "LT F-score", "LT precision", "LT recall", "absent flagged lost", "visible flagged lost")


def evaluate(dataset: str, out: Path, options: list[str]) -> dict:
    """One `siammask eval` run (its own printing kept out of the report); results.json."""
    with contextlib.redirect_stdout(io.StringIO()):
        status = siammask(["eval", "--dataset", dataset, "--root", str(SETS[dataset]), "--out", str(out), "--quiet",
                           *options])
    if status != 0:
        sys.exit(status)  # siammask printed the one-line reason
    return json.loads((out / "results.json").read_text())


def median_step(out: Path, datasets: tuple[str, ...]) -> float:
    """Median tracker step (ms) over every sequence of these data sets."""
    return float(np.median([ms for d in datasets for r in (out / d / "sequences").glob("*.json")
                            for ms in json.loads(r.read_text())["step_ms"]]))


def row(out: Path, results: dict[str, dict]) -> list[str]:
    """The table cells of one tracker."""
    def auc(dataset: str, name: str) -> float:
        return next(s["metrics"]["auc"] for s in results[dataset]["sequences"] if s["name"] == name)

    davis = results["davis"]["overall"]
    return [results["davis"]["tracker"], f"{davis['J_mean']:.3f}", f"{davis['F_mean']:.3f}", f"{davis['JF_mean']:.3f}",
            f"{auc('otb', 'Crossing'):.3f}", f"{auc('uav', 'person12'):.3f}", f"{auc('uav', 'wakeboard7'):.3f}",
            f"{results['uav']['overall']['auc']:.3f}", str(results["vot"]["overall"]["failures"]),
            f"{median_step(out, ONE_TARGET):.1f}", f"{median_step(out, ('davis',)):.1f}"]


def lt_header(lt: dict) -> tuple[str, ...]:
    """LT_HEADER, an F-score column per clip, the returns and the step time."""
    return (*LT_HEADER, *(f"{s['name']} F" for s in lt["sequences"]), "returns re-acquired, max delay",
            "ms/frame, LT")


def lt_row(out: Path, lt: dict) -> list[str]:
    """The long-term table cells of one tracker ('–' where a share has no frames to count)."""
    def cell(value: float | None) -> str:
        return "–" if value is None else f"{value:.3f}"

    summary = lt["overall"]
    return [lt["tracker"], *(cell(summary[k]) for k in ("f_score", "precision", "recall", "absent_lost",
                                                        "visible_lost")),
            *(cell(s["metrics"]["f_score"]) for s in lt["sequences"]), summary["returns"],
            f"{median_step(out, ('lt',)):.1f}"]


def markdown(rows: list) -> str:
    """A Markdown table: the first row is the header."""
    lines = [rows[0], ["---"] * len(rows[0]), *rows[1:]]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="our checkpoint or export directory (default: the shipped weights)")
    parser.add_argument("--nano-dir", default=str(DEFAULT_NANO_DIR), help="TrackerNano's two ONNX graphs")
    parser.add_argument("--out", default="runs/report_default")
    parser.add_argument("--threads", type=int, default=2, help="PyTorch and OpenCV threads (default: 2)")
    args = parser.parse_args()
    missing = [str(root) for root in SETS.values() if not root.is_dir()]
    if missing:
        print(f"report_default: needs the shared data sets; absent: {', '.join(missing)}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    trackers = {"siammask": ["--weights", args.weights] if args.weights else [],
                "nano": ["--baseline", "nano", "--nano-dir", args.nano_dir],
                "csrt": ["--baseline", "csrt"]}
    rows, lt_rows = [HEADER], []
    for name, options in trackers.items():
        out = Path(args.out) / name
        print(f"report_default: {name} ...", file=sys.stderr)
        results = {dataset: evaluate(dataset, out / dataset, options) for dataset in SETS}
        rows.append(row(out, results))
        lt_rows.append(lt_row(out, results["lt"]))
    lt_table = markdown([lt_header(results["lt"]), *lt_rows])  # every tracker ran the same clips
    table = f"{markdown(rows)}\n\nLong-term clips (LT/), one pass each:\n\n{lt_table}"
    note = f"{cpu_name()}, {args.threads} threads (PyTorch and OpenCV), torch {torch.__version__}, OpenCV {cv2.__version__}"
    (Path(args.out) / "report.md").write_text(f"{table}\n\n{note}\n")
    print(f"{table}\n\n{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
