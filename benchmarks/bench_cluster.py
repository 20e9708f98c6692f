"""What cluster mode costs on one machine: `siammask serve` with the same streams run three ways in
one run, side by side: plain processes (no cluster), `--cluster ray` with one inference worker
actor, and with two. For 1, 2 and 4 looping MJPEG streams (one target each) offered at --fps each:
results per second a subscriber receives, and the latency serve adds per frame (capture to the
subscriber's receive, minus the frame's tracker work: preprocess + infer + postprocess), p50 and
p99, and that added latency's p50 over the plain run's. One stream with two workers is not run (the
second would hold nothing).

Speed does not depend on the weight values, so seeded random weights of --variant are used.

Each row pools --repeats serve runs: within one run the streams' capture phases against the
inference turns are fixed, and they alone move that run's added p50 by several ms.

    python benchmarks/bench_cluster.py [--variant lite] [--seconds 20] [--fps 5] [--repeats 3] [--json out.json]
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from bench_pipeline import Served, percentiles, serve_config, write_mjpeg
from siammask.checkpoint import save_checkpoint
from siammask.model import build_model
from siammask.synthetic import make_sequence

STREAMS = (1, 2, 4)
MODES = ("plain", "1 worker", "2 workers")
WARMUP_S = 5.0  # after the first result: every stream (and every worker) has started


def run(workdir: Path, video: Path, weights: Path, box, streams: int, mode: str, fps: float, seconds: float,
        threads: int) -> list[tuple[float, dict]]:
    """One serve run: the (receive time, message) pairs of its measuring window."""
    config = serve_config([{"id": f"s{i}", "source": str(video), "loop": True, "fps": fps, "boxes": [list(box)]}
                           for i in range(streams)], weights, threads)
    if mode != "plain":
        workers = 1 if mode == "1 worker" else 2
        config.update(cluster="ray", worker={"num_cpus": 1, "max_streams": math.ceil(streams / workers)})
    served = Served(workdir, config)
    try:
        served.wait_first()
        served.receive(WARMUP_S)
        return served.receive(seconds)
    finally:
        served.stop()


def summarise(runs: list[list[tuple[float, dict]]], streams: int, mode: str, fps: float, seconds: float) -> dict:
    """The frames of every repeat pooled: the streams' capture phases against the inference turns are
    fixed within one run and random between runs, and they move a run's waits by several ms."""
    msgs = [pair for run_msgs in runs for pair in run_msgs]
    work = [sum(m["stages_ms"][k] for k in ("preprocess", "infer", "postprocess")) for _, m in msgs]
    e2e = [(t - m["capture_ts"]) * 1000 for t, m in msgs]
    added = [a - b for a, b in zip(e2e, work)]
    bounds = list(itertools.accumulate(len(r) for r in runs))  # each run's slice of the pooled lists
    per_run = [percentiles(added[lo:hi])["p50"] for lo, hi in zip([0, *bounds], bounds)]
    return {"streams": streams, "mode": mode, "runs": len(runs),
            "results_per_s": round(len(msgs) / (seconds * len(runs)), 2), "offered_per_s": streams * fps,
            "dropped": sum(sum(m["dropped"].values()) for _, m in msgs),
            "added_ms": percentiles(added), "added_p50_per_run_ms": per_run, "end_to_end_ms": percentiles(e2e),
            "tracker_work_ms": percentiles(work)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="lite", choices=["lite", "sharp"])
    parser.add_argument("--threads", type=int, default=1, help="torch threads per inference process")
    parser.add_argument("--frames", type=int, default=30, help="frames in the looping test video")
    parser.add_argument("--size", default="640x360", help="frame size WxH")
    parser.add_argument("--fps", type=float, default=5.0, help="frames offered per stream per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring time of each serve run")
    parser.add_argument("--repeats", type=int, default=3, help="serve runs per row, frames pooled (default: 3)")
    parser.add_argument("--json", help="write the numbers as JSON here")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    size = tuple(int(v) for v in args.size.split("x"))

    work = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    try:
        report = measure(work, args, size)
    finally:
        shutil.rmtree(work)
    print("\n| streams | mode | results/s (offered) | added p50 ms | added p99 ms | added p50 over plain ms "
          "| added p50 of each run ms |")
    print("|---|---|---|---|---|---|---|")
    for r in report["rows"]:
        print(f"| {r['streams']} | {r['mode']} | {r['results_per_s']} ({r['offered_per_s']:g}) | "
              f"{r['added_ms']['p50']} | {r['added_ms']['p99']} | {r['added_p50_over_plain_ms']} | "
              f"{', '.join(f'{v:g}' for v in r['added_p50_per_run_ms'])} |")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


def measure(work: Path, args: argparse.Namespace, size: tuple[int, int]) -> dict:
    """Every row, the plain run of each stream count first (the others are compared with it)."""
    torch.manual_seed(0)
    weights = save_checkpoint(build_model(args.variant).eval(), work / "model.pth", config={"hp": "davis"})
    frames = make_sequence(num_frames=args.frames, size=size, seed=0)
    video = write_mjpeg(frames, work / "video.avi", size)
    report: dict = {"variant": args.variant, "size": args.size, "fps_per_stream": args.fps, "rows": []}
    for streams in STREAMS:
        plain = None
        for mode in MODES:
            if streams == 1 and mode == "2 workers":
                continue
            runs = [run(work, video, weights, frames[0].box, streams, mode, args.fps, args.seconds, args.threads)
                    for _ in range(args.repeats)]
            row = summarise(runs, streams, mode, args.fps, args.seconds)
            plain = plain or row
            row["added_p50_over_plain_ms"] = round(row["added_ms"]["p50"] - plain["added_ms"]["p50"], 2)
            report["rows"].append(row)
            print(json.dumps(row), flush=True)
    return report


if __name__ == "__main__":
    sys.exit(main())
