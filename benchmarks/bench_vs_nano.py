"""Our whole `Tracker.step` (one target, mask included) against OpenCV TrackerNano's `update` (box
only), on the same frames with the same thread count, in one run.

    python benchmarks/bench_vs_nano.py [--weights FILE] [--engine E] [--precision P] [--threads 2]
        [--passes 4] [--order blocks|frames] [--graph-floors] [--root ../shared/data/OTB --sequence Crossing]
        [--frames N] [--targets 1,2,4,8,16] [--breakdown]

Both trackers follow the sequence from its first ground-truth box. `--order blocks` (the default):
each pass runs one tracker over the whole sequence, then the other, the first of the two
alternating from pass to pass. `--order frames`: each frame is given to both, the first alternating
from frame to frame, so that load from other processes falls on both alike; but then the thread
pools of one (ONNX Runtime's spin for a while after a run) are still busy during the other's timed
call: on 2 cores that slowed TrackerNano's update from ~3.7 to ~5.7 ms and flattered our ratio
(benchmarks/RESULTS.md). Each pass starts the trackers again from the first frame; the first
WARMUP steps of each tracker's first run are not counted. Prints medians, p90 and the ratio
ours / TrackerNano, with the CPU model. `--graph-floors` adds NanoTrack V3's and V2's own graphs.
`--breakdown` adds, from one more pass of ours alone, where our step's time goes: inside each ONNX
Runtime session (template: the presence embedding; search; mask) and the rest (crop, decode,
presence, paste-back, guided filter, polygon), each a median per step.
Needs ../shared (the sequence and TrackerNano's graphs); machines differ ~2x in absolute speed, so
compare ratios measured in one run.

`--targets 1,2,4,8,16`: many targets on one frame instead (issue 22, item 4), by default on UAV123
person12 (1280x720): for each count N, our one batched `Tracker.step` over N targets against N
TrackerNano instances' updates on the same frames, in blocks, and the cost per target of each. The
N targets are the sequence's first box N times, each moved by a few pixels (so that every crop
differs and every target stays on the object, as tracked targets are: none is lost and searched for).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from siammask.threads import inference_spinning, set_inference_spinning, set_inference_threads, single_threaded_blas

single_threaded_blas()  # as `siammask track` runs (siammask.cli), before numpy is imported

import cv2
import numpy as np

from siammask.commands.common import add_model_options, build_tracker
from siammask.errors import UserError
from siammask.evaluation.baselines import DEFAULT_NANO_DIR, OpenCVTracker
from siammask.evaluation.data import load_otb
from siammask.evaluation.timing import cpu_name
from siammask.tracker import Tracker

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
WARMUP = 5


def frames_and_box(root: Path, name: str, limit: int | None = None) -> tuple[list[np.ndarray], tuple[float, ...]]:
    """The frames of one OTB-layout sequence in memory (the first `limit` of them), and its first box."""
    sequence = next((s for s in load_otb(root) if s.name == name), None)
    if sequence is None:
        raise UserError(f"no sequence '{name}' in '{root}'")
    return [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in sequence.frames[:limit]], tuple(sequence.boxes[0])


def spread(box: tuple[float, ...], count: int) -> list[tuple[float, ...]]:
    """`count` targets from one box: each moved by up to 3 px in x and y (a 4x4 pattern of offsets)."""
    x, y, w, h = box
    return [(x + 2 * (i % 4) - 3, y + 2 * (i // 4 % 4) - 3, w, h) for i in range(count)]


class GraphFloor:
    """NanoTrack's own published ONNX graphs on ONNX Runtime (search backbone + head, box only, no
    crop or decoding): the least any tracker on that trunk and head can spend per frame."""

    def __init__(self, folder: Path, version: str, threads: int) -> None:
        from siammask.engines.onnx_session import open_session

        names = {"v2": "nanotrackv2_nanotrack_{}_sim.onnx", "v3": "nanotrackv3_nanotrack_{}.onnx"}[version]
        self.backbone, self.head = (open_session(folder / names.format(part), ["CPUExecutionProvider"], threads)
                                    for part in ("backbone", "head"))
        self.template: np.ndarray | None = None

    def init(self, frame: np.ndarray) -> None:
        # The published backbone graph takes 255x255 crops only; any 8x8 map of the right width
        # serves as the template here, since values do not change the time.
        self.template = self.backbone.run(None, {"input": self._crop(frame)})[0][:, :, 4:12, 4:12]

    @staticmethod
    def _crop(frame: np.ndarray) -> np.ndarray:
        return cv2.resize(frame, (255, 255)).transpose(2, 0, 1)[None].astype(np.float32)

    def step(self, frame: np.ndarray) -> None:
        search = self.backbone.run(None, {"input": self._crop(frame)})[0]
        self.head.run(None, {"input1": self.template, "input2": search})


class SessionClock:
    """Time spent inside each ONNX Runtime session of an engine (its `sessions` by role), per step."""

    def __init__(self, engine) -> None:
        self.spent: dict[str, float] = {}
        for role, session in getattr(engine, "sessions", {}).items():
            session.run = self._timed(role, session.run)
        self.roles = list(getattr(engine, "sessions", {}))

    def _timed(self, role: str, run):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return run(*args, **kwargs)
            finally:
                self.spent[role] = self.spent.get(role, 0.0) + (time.perf_counter() - start) * 1000
        return timed

    def lap(self) -> dict[str, float]:
        """ms in each session since the last lap (0 for a session not run)."""
        out = {role: self.spent.get(role, 0.0) for role in self.roles}
        self.spent.clear()
        return out


def breakdown(tracker: Tracker, frames: list[np.ndarray], box: tuple[float, ...]) -> dict[str, float]:
    """Median ms per step inside each graph of ours and outside them (one pass, no warm-up counted)."""
    clock = SessionClock(tracker.engine)
    if not clock.roles:
        raise UserError(f"--breakdown times ONNX Runtime sessions; engine {tracker.engine.name} has none")
    rows: list[dict[str, float]] = []
    states = tracker.init(frames[0], [box])
    for index, frame in enumerate(frames[1:]):
        clock.lap()
        start = time.perf_counter()
        states, _ = tracker.step(frame, states)
        total = (time.perf_counter() - start) * 1000
        graphs = clock.lap()
        if index >= WARMUP:
            rows.append({**graphs, "rest": total - sum(graphs.values()), "step": total})
    parts = {name: float(np.median([r[name] for r in rows])) for name in rows[0]
             if name in ("rest", "step") or any(r[name] for r in rows)}  # a graph never run is left out
    print("\n| part of our step | median ms |\n|---|---|")
    for name, ms in parts.items():
        label = {"template": "template graph (presence embedding)", "search": "search graph (batched)",
                 "search_one": "search graph for one crop", "mask": "mask graph",
                 "rest": "outside the graphs (crop, decode, presence, paste-back, guided filter, polygon)",
                 "step": "whole step"}.get(name, name)
        print(f"| {label} | {ms:.2f} |")
    return parts


def _run(name: str, trackers: dict, frames: list[np.ndarray], boxes: list[tuple[float, ...]]):
    """A generator that steps one tracker a frame each time it is advanced, yielding ms per step (all
    targets). For TrackerNano only OpenCV's own updates are timed (nothing of ours around them)."""
    tracker = trackers[name]
    if name == "ours":
        states = tracker.init(frames[0], boxes)
    elif name == "nano":
        started = tracker.init(frames[0], boxes)
    else:
        tracker.init(frames[0])
    for frame in frames[1:]:
        start = time.perf_counter()
        if name == "ours":
            states, _ = tracker.step(frame, states)
        elif name == "nano":
            for target in started:
                target.tracker.update(frame)
        else:
            tracker.step(frame)
        yield (time.perf_counter() - start) * 1000


def measure(trackers: dict, frames: list[np.ndarray], boxes: list[tuple[float, ...]], passes: int,
            order: str = "blocks") -> dict[str, list[float]]:
    """ms per step of each tracker over `passes` runs through the sequence, interleaved by `order`
    (the first tracker of a pass rotates from pass to pass)."""
    samples: dict[str, list[float]] = {name: [] for name in trackers}
    for p in range(passes):
        names = list(trackers)[p % len(trackers):] + list(trackers)[:p % len(trackers)]
        runs = {name: _run(name, trackers, frames, boxes) for name in names}
        if order == "blocks":
            steps = [(name, t) for name in names for t in runs[name]]
        else:
            steps = [(name, next(runs[name])) for i in range(len(frames) - 1)
                     for name in (names if i % 2 == 0 else names[::-1])]
        counted = dict.fromkeys(trackers, 0)
        for name, ms in steps:
            counted[name] += 1
            if p > 0 or counted[name] > WARMUP:
                samples[name].append(ms)
    return samples


LABELS = {"ours": "SiamMask Tracker.step (mask included)", "nano": "OpenCV TrackerNano.update (box)",
          "v3": "NanoTrack V3 graphs alone, ONNX Runtime (backbone + head)",
          "v2": "NanoTrack V2 graphs alone, ONNX Runtime (backbone + head)"}


def _stats(samples: list[float]) -> dict[str, float]:
    return {"median_ms": float(np.median(samples)), "p90_ms": float(np.percentile(samples, 90)), "steps": len(samples)}


def one_target(args: argparse.Namespace, trackers: dict, frames: list[np.ndarray], box: tuple[float, ...]) -> dict:
    """The per-frame table: ours, TrackerNano (and the graph floors) on one target."""
    stats = {name: _stats(v) for name, v in measure(trackers, frames, [box], args.passes, args.order).items()}
    ratio = stats["ours"]["median_ms"] / stats["nano"]["median_ms"]
    print("| tracker | median ms | p90 ms | frames/s | steps |\n|---|---|---|---|---|")
    for name, s in stats.items():
        print(f"| {LABELS[name]} | {s['median_ms']:.2f} | {s['p90_ms']:.2f} | {1000 / s['median_ms']:.1f} | {s['steps']} |")
    print(f"\nratio ours / TrackerNano: median {ratio:.2f}x, p90 {stats['ours']['p90_ms'] / stats['nano']['p90_ms']:.2f}x")
    for name in ("v3", "v2"):
        if name in stats:
            print(f"ratio {LABELS[name].split(' graphs')[0]} graphs alone / TrackerNano: median "
                  f"{stats[name]['median_ms'] / stats['nano']['median_ms']:.2f}x")
    return {"stats": stats, "ratio_median": ratio}


def many_targets(args: argparse.Namespace, trackers: dict, frames: list[np.ndarray], box: tuple[float, ...]) -> dict:
    """For each count N: our batched step over N targets against N TrackerNano updates, per target."""
    rows = {}
    print("| targets | ours ms (all) | TrackerNano ms (all) | ours ms/target | TrackerNano ms/target | ratio |\n"
          "|---|---|---|---|---|---|")
    for count in args.targets:
        stats = {name: _stats(v) for name, v in measure(trackers, frames, spread(box, count), args.passes).items()}
        ours, nano = stats["ours"]["median_ms"], stats["nano"]["median_ms"]
        rows[count] = {"stats": stats, "ratio_median": ours / nano}
        print(f"| {count} | {ours:.2f} | {nano:.2f} | {ours / count:.2f} | {nano / count:.2f} | {ours / nano:.2f}x |")
    return {"targets": rows}


def _counts(text: str) -> list[int]:
    counts = [int(v) for v in text.split(",") if v.strip()]
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("give target counts of at least 1, e.g. 1,2,4,8,16")
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_options(parser)
    parser.add_argument("--nano-dir", default=str(DEFAULT_NANO_DIR), help="TrackerNano's two ONNX graphs")
    parser.add_argument("--root", help="OTB-layout folder (default: ../shared/data/OTB, with --targets "
                                       "../shared/data/UAV123_10fps)")
    parser.add_argument("--sequence", help="sequence in --root (default: Crossing, with --targets person12)")
    parser.add_argument("--frames", type=int, help="use the first N frames (default: all; with --targets 40)")
    parser.add_argument("--targets", type=_counts, help="target counts on one frame, e.g. 1,2,4,8,16: the "
                                                        "per-target table instead of the per-frame one")
    parser.add_argument("--threads", type=int, default=2,
                        help="inference (siammask.threads) and OpenCV threads (default: 2)")
    parser.add_argument("--spin", action=argparse.BooleanOptionalAction, default=None,
                        help="ONNX Runtime's threads spin within a run, ours and V3's/V2's graphs alike (default: "
                             "yes, unless OMP_WAIT_POLICY=PASSIVE; siammask.threads); --no-spin as serve runs")
    parser.add_argument("--passes", type=int, default=4, help="times through the sequence (default: 4)")
    parser.add_argument("--order", choices=("blocks", "frames"), default="blocks",
                        help="blocks: one tracker over the whole sequence, then the other (default); "
                             "frames: alternate frame by frame (see the docstring for its bias)")
    parser.add_argument("--graph-floors", action="store_true",
                        help="also time NanoTrack V3's and V2's own published graphs on ONNX Runtime (search "
                             "backbone + head, no crop, box only): the least a tracker on either trunk spends")
    parser.add_argument("--breakdown", action="store_true",
                        help="one more pass of ours alone: median ms per step inside each ONNX Runtime graph "
                             "and outside them")
    parser.add_argument("--json", help="write the numbers as JSON here")
    args = parser.parse_args()
    if args.threads < 1 or args.passes < 1 or (args.frames is not None and args.frames < 2):
        print("bench_vs_nano: --threads and --passes must be at least 1, --frames at least 2", file=sys.stderr)
        return 2
    set_inference_threads(args.threads)
    set_inference_spinning(args.spin)
    cv2.setNumThreads(args.threads)
    root = Path(args.root or DATA / ("UAV123_10fps" if args.targets else "OTB"))
    sequence = args.sequence or ("person12" if args.targets else "Crossing")
    try:
        frames, box = frames_and_box(root, sequence, args.frames or (40 if args.targets else None))
        trackers = {"ours": build_tracker(args), "nano": OpenCVTracker("nano", Path(args.nano_dir))}
        for version in ("v3", "v2"):
            if args.graph_floors and not args.targets:
                trackers[version] = GraphFloor(Path(args.nano_dir), version, args.threads)
    except UserError as error:
        print(f"bench_vs_nano: {error} (this benchmark needs ../shared)", file=sys.stderr)
        return 2
    height, width = frames[0].shape[:2]
    spin = "spinning within a run" if inference_spinning() else "not spinning"
    print(f"{cpu_name()}, load {os.getloadavg()[0]:.2f}; {args.threads} threads (siammask.threads, cv2.setNumThreads; "
          f"ONNX Runtime's {spin}); "
          f"{sequence} ({width}x{height}, {len(frames)} frames) x {args.passes} passes, order "
          f"{'blocks' if args.targets else args.order}; engine {args.engine}, precision {args.precision or 'fp32'}\n")
    result = (many_targets if args.targets else one_target)(args, trackers, frames, box)
    if args.breakdown:
        try:
            result["breakdown_ms"] = breakdown(trackers["ours"], frames, box)
        except UserError as error:
            print(f"bench_vs_nano: {error}", file=sys.stderr)
            return 2
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu_name(), "load_average": os.getloadavg(), "threads": args.threads,
                                               "spinning": inference_spinning(), "sequence": sequence,
                                               "weights": args.weights, "engine": args.engine, "order": args.order,
                                               "precision": args.precision, **result}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
