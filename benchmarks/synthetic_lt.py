"""Long-term numbers on held-out sequences with synthetic disappearances: OTB Crossing, UAV123
person12 and wakeboard7 (evaluation sets: never trained on), each with its target made absent in
every mode of `siammask dataset occlude`, then `siammask eval --dataset lt` over all of them.

    python benchmarks/synthetic_lt.py [--data ../shared/data] [--out runs/synthetic_lt] [eval options]

The clips are written once to OUT/clips (a later run reuses them); the table is OUT/eval/results.md.
Extra arguments go to `siammask eval` (e.g. --baseline nano, --no-redetect, --weights FILE).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from siammask.cli import main as siammask
from siammask.data.names import MODES, NEEDS_OTHER

# sequence (under DATA), first absent frame (1-based), absent frames, the other scene for occluder/cut
CLIPS = (("OTB/Crossing", 40, 20, "UAV123_10fps/person12"),
         ("UAV123_10fps/person12", 60, 20, "OTB/Crossing"),
         ("UAV123_10fps/wakeboard7", 25, 15, "LT/Lemming"))


def make_clips(data: Path, out: Path) -> None:
    """Every sequence of CLIPS in every mode, as OUT/<sequence>_<mode> (kept when already there)."""
    for name, start, length, other in CLIPS:
        for mode in MODES:
            target = out / f"{Path(name).name}_{mode}"
            if (target / "groundtruth_rect.txt").is_file():
                continue
            args = ["dataset", "occlude", "--quiet", "--root", str(data / name), "--out", str(target),
                    "--start", str(start), "--length", str(length), "--mode", mode]
            if mode in NEEDS_OTHER:
                args += ["--other", str(data / other)]
            if siammask(args) != 0:
                raise SystemExit(f"synthetic_lt: could not make {target}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--out", type=Path, default=Path("runs/synthetic_lt"))
    args, eval_options = parser.parse_known_args()
    missing = [name for name, *_ in CLIPS if not (args.data / name).is_dir()]
    if missing:
        print(f"synthetic_lt: needs the shared data sets; absent under {args.data}: {', '.join(missing)}",
              file=sys.stderr)
        return 2
    make_clips(args.data, args.out / "clips")
    return siammask(["eval", "--dataset", "lt", "--root", str(args.out / "clips"), "--out", str(args.out / "eval"),
                     "--quiet", *eval_options])


if __name__ == "__main__":
    sys.exit(main())
