"""Start-up time of the quick commands (`siammask --help`, `ctl --help`, `keys --help`, and `ctl list`
refused for want of a running serve) against a bare `python -c pass`, measured in the same run,
interleaved, median of several. The goal (issue 22): each <= 0.3 s. That nothing heavy is imported
for them is tests/test_startup.py's check; this script only times them.

    python benchmarks/bench_startup.py [--runs 9] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from siammask.evaluation.timing import cpu_name

GOAL_S = 0.3


def siammask_argv(script: str | None = None) -> list[str]:
    """What a user types: `script`, else the console script beside this Python where there is one."""
    script = script or shutil.which("siammask", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-c", "import sys; from siammask.cli import main; sys.exit(main())"]


def commands(scratch: Path) -> dict[str, list[str]]:
    """The quick commands, through the installed console script where there is one."""
    cli = siammask_argv()
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "siammask --help": [*cli, "--help"],
        "siammask ctl --help": [*cli, "ctl", "--help"],
        "siammask keys --help": [*cli, "keys", "--help"],
        "siammask ctl list (no serve)": [*cli, "ctl", "--control", f"ipc://{scratch}/no-serve", "list"],
    }


def wall_s(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9, help="starts of each command, interleaved (default: 9)")
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        todo = commands(Path(scratch))
        for argv in todo.values():  # warm the file cache and the byte-code once, untimed
            wall_s(argv)
        times: dict[str, list[float]] = {name: [] for name in todo}
        for _ in range(args.runs):
            for name, argv in todo.items():
                times[name].append(wall_s(argv))
    medians = {name: statistics.median(v) for name, v in times.items()}
    bare = medians["python -c pass"]
    print(f"{cpu_name()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; median of {args.runs} starts")
    print(f"{'command':32} {'median s':>9} {'over python':>12}  goal <= {GOAL_S} s")
    for name, median in medians.items():
        verdict = "" if name == "python -c pass" else ("ok" if median <= GOAL_S else "OVER")
        print(f"{name:32} {median:9.3f} {median - bare:12.3f}  {verdict}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": {"cpu": cpu_name(), "cpus": os.cpu_count(), "load_average": os.getloadavg()},
            "runs": args.runs, "median_s": medians, "goal_s": GOAL_S}, indent=2) + "\n")
    return 0 if all(m <= GOAL_S for m in medians.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
