"""`siammask eval`: score the tracker on a benchmark (VOT, DAVIS, OTB, UAV123, YouTube-VOS, long-term clips)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UserError
from ..evaluation.names import BASELINES, DEFAULT_NANO_DIR, VOT2016_INTERVAL
from .common import add_model_options, build_tracker

if TYPE_CHECKING:
    from ..evaluation.timing import SteppingTracker

DATASETS = ("vot", "davis", "otb", "uav", "ytb_vos", "lt")


def parse_interval(text: str) -> tuple[int, int]:
    """'LO,HI' -> two sequence lengths with 1 <= LO <= HI."""
    try:
        lo, hi = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not LO,HI (two whole numbers)") from None
    if not 1 <= lo <= hi:
        raise argparse.ArgumentTypeError(f"'{text}': need 1 <= LO <= HI")
    return lo, hi


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..evaluation.report import markdown_table
    from ..evaluation.runner import BENCHMARKS, evaluate

    root, out = Path(args.root).expanduser(), Path(args.out).expanduser()
    load_options = {"year": args.year, "split": args.split} if args.dataset == "davis" else {}
    overall_options = {"interval": args.eao_interval} if args.dataset == "vot" else {}
    tracker, label, tracker_settings = _opencv_baseline(args) if args.baseline else _siammask(args)
    # Everything that changes a sequence's result: a resumed run must match it.
    settings = {"dataset": args.dataset, "root": str(root.resolve()), **tracker_settings,
                "save_masks": args.save_masks, **load_options}
    try:
        results = evaluate(tracker, args.dataset, root, out, settings, label=label, save_masks=args.save_masks,
                           load_options=load_options, overall_options=overall_options,
                           progress=lambda total: tqdm(total=total, desc="eval", unit="frame", disable=args.quiet,
                                                       file=sys.stderr))
    except KeyboardInterrupt:
        print(f"siammask: interrupted; finished sequences are kept in '{out}': run the same command again "
              "to resume", file=sys.stderr)
        return 130
    print(markdown_table(results["sequences"], results["overall"], BENCHMARKS[args.dataset].protocol.COLUMNS))
    return 0


def _siammask(args: argparse.Namespace) -> tuple[SteppingTracker, str, dict]:
    """Our tracker from the model options, its label and the settings that identify it."""
    if args.nano_dir is not None:
        raise UserError("--nano-dir is for --baseline nano")
    from ..api import weights_path

    if args.dataset == "vot" and args.redetect is None:
        args.redetect = False  # VOT's supervised protocol restarts a failed tracker itself: short-term
    tracker = build_tracker(args)
    weights = weights_path(args.weights).resolve()
    return tracker, f"SiamMask ({weights.name})", {
        "weights": str(weights), "weights_sha256": _fingerprint(weights), "variant": args.variant, "hp": args.hp,
        "engine": args.engine, "device": args.device, "precision": args.precision, "redetect": tracker.cfg.redetect}


def _opencv_baseline(args: argparse.Namespace) -> tuple[SteppingTracker, str, dict]:
    """One of OpenCV's trackers, its label and the settings that identify it (OpenCV's version, and
    for TrackerNano the graphs' hashes)."""
    import cv2
    from ..engines.sidecar import sha256

    from ..evaluation.baselines import OpenCVTracker, nano_files

    model_options = argparse.ArgumentParser(add_help=False)
    add_model_options(model_options)
    given = [f"--{k}" for k, default in vars(model_options.parse_args([])).items() if getattr(args, k) != default]
    if given:
        raise UserError(f"--baseline runs OpenCV's {args.baseline} tracker, which takes no model options "
                        f"(given: {', '.join(given)})")
    if args.nano_dir is not None and args.baseline != "nano":
        raise UserError("--nano-dir is for --baseline nano")
    nano_dir = Path(args.nano_dir).expanduser() if args.nano_dir is not None else DEFAULT_NANO_DIR
    tracker = OpenCVTracker(args.baseline, nano_dir)
    settings = {"tracker": tracker.label, "opencv": cv2.__version__}
    if args.baseline == "nano":
        settings["nano_sha256"] = [sha256(p) for p in nano_files(nano_dir)]
    return tracker, tracker.label, settings


def _fingerprint(weights: Path) -> str:
    """The checkpoint's content hash (an export directory's: its sidecar's, which holds the graphs'
    checksums), so that retrained weights at the same path never resume an older run."""
    from ..engines.sidecar import SIDECAR, sha256

    return sha256(weights / SIDECAR if weights.is_dir() else weights)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate on a benchmark dataset (VOT, DAVIS, OTB, UAV123, YouTube-VOS, "
                                    "long-term clips)")
    p.add_argument("--dataset", required=True, choices=DATASETS,
                   help="benchmark layout and protocol: vot (supervised, EAO), davis / ytb_vos (J and F), "
                        "otb / uav (one-pass success and precision), lt (long-term: one pass, VOT-LT "
                        "precision/recall/F with presence as confidence, lost flags, re-acquisition delays; "
                        "OTB/UAV or VOT layout with NaN rows where the target is absent)")
    p.add_argument("--root", required=True, help="dataset folder (VOT: holds list.txt; DAVIS: holds JPEGImages/; "
                                                 "OTB/UAV: holds SEQ/img/; YouTube-VOS: holds meta.json; "
                                                 "LT: SEQ/img/ or SEQ/groundtruth.txt folders)")
    p.add_argument("--out", required=True, help="results folder; a finished sequence found there is not run again")
    add_model_options(p)
    p.add_argument("--baseline", choices=BASELINES,
                   help="score one of OpenCV's trackers instead of SiamMask, through the same protocol: "
                        "csrt, kcf, or nano (TrackerNano, NanoTrack V2); box only, its mask is the box "
                        "filled; takes no model options")
    p.add_argument("--nano-dir", help="folder with TrackerNano's graphs nanotrackv2_nanotrack_backbone_sim.onnx "
                                      "and nanotrackv2_nanotrack_head_sim.onnx (default: "
                                      "../shared/pretrained/nanotrack beside the repository)")
    p.add_argument("--save-masks", action="store_true", help="write predicted masks as OUT/masks/SEQ/NNNNN.png")
    p.add_argument("--year", choices=["2016", "2017"], help="DAVIS year (default: 2016 when ImageSets/2016 "
                                                            "has the split, else 2017)")
    p.add_argument("--split", default="val", help="DAVIS split in ImageSets/YEAR/ (default: val)")
    p.add_argument("--eao-interval", type=parse_interval, default=VOT2016_INTERVAL, metavar="LO,HI",
                   help="VOT: sequence lengths the EAO averages over (default: %(default)s, as VOT2016)")
    p.set_defaults(func=run)
