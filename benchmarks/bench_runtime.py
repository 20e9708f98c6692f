"""What a run costs a small box, from the outside: peak RSS and the time from starting the process to
its first result, of `siammask track` with the default weights beside OpenCV's TrackerNano in a plain
Python process (cv2 and its two graphs, nothing of ours), in the same run on the same frames.

    python benchmarks/bench_runtime.py [--siammask PATH] [--runs 3] [--threads N] [--json out.json]
        [--root ../shared/data/OTB --sequence Crossing] [--nano-dir DIR] [--stages]

Each run starts a fresh process of each (alternating which goes first) that tracks the sequence's
image folder from its first ground-truth box and writes one JSON line per frame to a pipe; the
first result is the line of frame 1 (the first tracked frame), read here as it arrives. Peak RSS is
the kernel's high-water mark of each process (wait4). Prints the medians, the ratios ours /
TrackerNano (issue 22's goals: both <= 2x) and the machine and its load.

`--siammask` picks the command to measure: the default is the console script beside this Python;
point it at one installed from the wheel into an environment without torch (.ci/wheel_check makes
such an environment) to measure the lean runtime, whose default weights' graphs ship prebuilt; a
source checkout exports them on its first run and imports torch to do it. Needs ../shared (the
sequence and TrackerNano's graphs).

`--stages` adds where our start-up and memory go, from the Python of that command, in fresh
processes (--runs of them, medians): each import (numpy, OpenCV, ONNX Runtime, ours), loading the
tracker as `track` does, reading the first frame, `init`, the first step and the rest, each with its
time, the RSS after it and the peak so far; and each ONNX Runtime session of the default weights
opened alone, one after another, with its time and what it added to the RSS.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from siammask.errors import UserError
from siammask.evaluation.baselines import DEFAULT_NANO_DIR, nano_files
from siammask.evaluation.data import load_otb
from siammask.evaluation.timing import cpu_name

from bench_startup import siammask_argv

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SUBPROCESS_TIMEOUT_S = 600  # hang guard only

# TrackerNano as a user would run it: read each image, update, print the box. argv: graphs, box, frames...
NANO_SCRIPT = """
import json, sys, cv2
backbone, head, box, threads, *frames = sys.argv[1:]
if int(threads):
    cv2.setNumThreads(int(threads))
params = cv2.TrackerNano_Params()
params.backbone, params.neckhead = backbone, head
tracker = cv2.TrackerNano.create(params)
tracker.init(cv2.imread(frames[0]), tuple(int(round(float(v))) for v in box.split(",")))
for index, path in enumerate(frames[1:], 1):
    found, got = tracker.update(cv2.imread(path))
    sys.stdout.write(json.dumps({"frame": index, "box": list(got)}) + "\\n")
    sys.stdout.flush()
"""


# Where the time and memory of a track go, stage by stage, in a process of the measured command's
# Python: one JSON line per stage. argv: box, frames...
STAGES_SCRIPT = """
import json, os, sys, time
start = time.perf_counter()
def mark(stage):
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    print(json.dumps({"stage": stage, "s": time.perf_counter() - start, "rss_mb": int(status["VmRSS"].split()[0]) / 1024,
                      "peak_mb": int(status["VmHWM"].split()[0]) / 1024}), flush=True)
from siammask.threads import single_threaded_blas
single_threaded_blas()
mark("import siammask.threads (after the interpreter started, not timed)")
import numpy
mark("import numpy")
import cv2
mark("import cv2")
import onnxruntime
mark("import onnxruntime")
from siammask.api import DEFAULT_GRAPHS, load_tracker
mark("import siammask.api")
if sys.argv[1] == "sessions":
    from siammask.engines.onnx_session import open_session
    from siammask.engines.sidecar import SIDECAR, read_sidecar
    if not (DEFAULT_GRAPHS / SIDECAR).is_file():
        sys.exit("no shipped graphs in this install (a source checkout: build the wheel, or run "
                 "'siammask export --out siammask/weights/default-onnx')")
    for role, name in read_sidecar(DEFAULT_GRAPHS, backend="onnx").files.items():
        globals()[role] = open_session(DEFAULT_GRAPHS / name, ["CPUExecutionProvider"], 2)
        mark(f"session {role}")
    sys.exit()
tracker = load_tracker()
mark("load_tracker")
box, first, *rest = sys.argv[1:]
frame = cv2.imread(first)
mark("read frame 0")
states = tracker.init(frame, [[float(v) for v in box.split(",")]])
mark("init")
for index, path in enumerate(rest, 1):
    states, _ = tracker.step(cv2.imread(path), states)
    if index == 1:
        mark("read + step frame 1")
mark(f"read + step frames 2-{len(rest)}")
"""


@dataclass
class Run:
    first_result_s: float  # process start -> frame 1's line read
    wall_s: float          # process start -> exit
    peak_rss_mb: float
    lines: int


def timed_run(argv: list[str], env: dict[str, str]) -> Run:
    """Start `argv`, note when the line of frame 1 arrives on its stdout, wait for it, and read its
    peak RSS from the kernel (ru_maxrss, KiB on Linux)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    first, lines = None, 0
    for line in proc.stdout:
        lines += 1
        if first is None and json.loads(line)["frame"] == 1:
            first = time.perf_counter() - start
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or first is None:
        raise UserError(f"{argv[0]} exited with {proc.returncode} after {lines} lines: {proc.stderr.read().decode()[-500:]}")
    return Run(first, wall, usage.ru_maxrss / 1024, lines)


def interpreter_of(argv: list[str]) -> str:
    """The Python that runs a console script (its #! line), else this one (a script pip started
    with `#!/bin/sh` for a long venv path falls back to it too: pass --siammask as VENV/bin/siammask
    of a short path when the stages must be that venv's)."""
    head = Path(argv[0]).read_bytes()[:200].split(b"\n")[0] if Path(argv[0]).is_file() else b""
    return head[2:].decode().strip() if head.startswith(b"#!") and b"python" in head else sys.executable


def stages(python: str, args: list[str], runs: int, env: dict[str, str]) -> list[dict]:
    """Medians over `runs` fresh processes of each stage's duration (from the previous stage), RSS and peak."""
    seen: dict[str, list[dict]] = {}
    for _ in range(runs):
        # from a neutral folder: `python -c` imports from its working directory first, and run from a
        # checkout it measured that checkout's siammask instead of the one --siammask names
        out = subprocess.run([python, "-c", STAGES_SCRIPT, *args], capture_output=True, text=True, env=env,
                             timeout=SUBPROCESS_TIMEOUT_S, cwd=tempfile.gettempdir())
        if out.returncode != 0:
            last = (out.stderr.strip().splitlines() or ["no message"])[-1]
            raise UserError(f"the stage breakdown failed: {last}")
        marks = [json.loads(line) for line in out.stdout.splitlines()]
        for previous, mark in zip([{"s": 0.0}, *marks], marks):
            seen.setdefault(mark["stage"], []).append({**mark, "s": mark["s"] - previous["s"]})
    return [{"stage": stage, **{field: statistics.median(m[field] for m in ms) for field in ("s", "rss_mb", "peak_mb")}}
            for stage, ms in seen.items()]


def print_stages(title: str, rows: list[dict]) -> None:
    print(f"\n{title}\n\n| stage | s | RSS after MB | peak so far MB |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['stage']} | {row['s']:.3f} | {row['rss_mb']:.1f} | {row['peak_mb']:.1f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--siammask", help="the siammask command to measure (default: the one beside this Python)")
    parser.add_argument("--root", default=str(DATA / "OTB"), help="OTB-layout folder (default: ../shared/data/OTB)")
    parser.add_argument("--sequence", default="Crossing", help="sequence in --root (default: Crossing)")
    parser.add_argument("--nano-dir", default=str(DEFAULT_NANO_DIR), help="TrackerNano's two ONNX graphs")
    parser.add_argument("--runs", type=int, default=3, help="processes of each, alternating (default: 3)")
    parser.add_argument("--threads", type=int, default=0,
                        help="threads of both (OMP_NUM_THREADS for ours, cv2.setNumThreads for TrackerNano; "
                             "default: each library's own choice, as a user gets)")
    parser.add_argument("--json", help="also write the numbers here")
    parser.add_argument("--stages", action="store_true",
                        help="also break our start-up and memory down by stage and by ONNX Runtime session")
    args = parser.parse_args()
    if args.runs < 1 or args.threads < 0:
        print("bench_runtime: --runs must be at least 1 and --threads at least 0", file=sys.stderr)
        return 2
    try:
        sequence = next((s for s in load_otb(Path(args.root)) if s.name == args.sequence), None)
        if sequence is None:
            raise UserError(f"no sequence '{args.sequence}' in '{args.root}'")
        graphs = nano_files(Path(args.nano_dir))
    except UserError as error:
        print(f"bench_runtime: {error} (this benchmark needs ../shared)", file=sys.stderr)
        return 2
    folder = Path(sequence.frames[0]).parent
    box = ",".join(f"{v:g}" for v in sequence.boxes[0])
    ours = [*siammask_argv(args.siammask), "track", str(folder), "--box", box, "--json", "/dev/stdout", "-q"]
    nano = [sys.executable, "-c", NANO_SCRIPT, *map(str, graphs), box, str(args.threads), *map(str, sequence.frames)]
    env = {**os.environ, **({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {})}
    runs: dict[str, list[Run]] = {"ours": [], "nano": []}
    try:
        for i in range(args.runs):
            for name in (("ours", "nano") if i % 2 == 0 else ("nano", "ours")):
                runs[name].append(timed_run(ours if name == "ours" else nano, env))
    except UserError as error:
        print(f"bench_runtime: {error}", file=sys.stderr)
        return 2
    breakdown: dict[str, list[dict]] = {}
    failed = None  # the breakdown's one-line error: reported after the main table, which stands
    if args.stages:
        python = interpreter_of(ours)
        try:
            frames = [str(Path(f).resolve()) for f in sequence.frames]
            breakdown["track"] = stages(python, [box, *frames], args.runs, env)
            breakdown["sessions"] = stages(python, ["sessions"], args.runs, env)
        except UserError as error:
            failed = str(error)
    medians = {name: {field: statistics.median(getattr(r, field) for r in rs)
                      for field in ("first_result_s", "wall_s", "peak_rss_mb")} for name, rs in runs.items()}
    ratios = {field: medians["ours"][field] / medians["nano"][field] for field in medians["ours"]}
    machine = {"cpu": cpu_name(), "cpus": os.cpu_count(), "load_average": os.getloadavg()}
    print(f"{machine['cpu']}, {machine['cpus']} CPUs, load {machine['load_average'][0]:.2f}; {args.sequence} "
          f"({len(sequence.frames)} frames); median of {args.runs} processes each; threads "
          f"{args.threads or 'default'}\nours: {' '.join(ours[:2])} ...\n")
    print("| process | first result s | wall s | peak RSS MB |\n|---|---|---|---|")
    for name, label in (("ours", "siammask track (default weights)"), ("nano", "TrackerNano, plain Python + cv2")):
        m = medians[name]
        print(f"| {label} | {m['first_result_s']:.2f} | {m['wall_s']:.2f} | {m['peak_rss_mb']:.0f} |")
    print(f"| ratio ours / TrackerNano (goal <= 2) | {ratios['first_result_s']:.2f}x | {ratios['wall_s']:.2f}x | "
          f"{ratios['peak_rss_mb']:.2f}x |")
    if "track" in breakdown:
        print_stages(f"Where our start-up and memory go ({python}; each stage's time from the one before)",
                     breakdown["track"])
    if "sessions" in breakdown:
        print_stages("The default weights' ONNX Runtime sessions opened one after another (the engine opens them "
                     "side by side)", breakdown["sessions"])
    if args.json:
        Path(args.json).write_text(json.dumps({"stages": breakdown,
            "machine": machine, "sequence": args.sequence, "frames": len(sequence.frames), "threads": args.threads,
            "command": ours, "runs": {name: [vars(r) for r in rs] for name, rs in runs.items()},
            "median": medians, "ratio": ratios}, indent=2) + "\n")
    if failed:
        print(f"bench_runtime: {failed}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
