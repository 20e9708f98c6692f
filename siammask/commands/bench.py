"""`siammask bench`: per-stage latency of every engine and precision, side by side, at the geometry
of a real clip (854x480 frame, target box 300,110,165,255).

Engines are timed round-robin, one step each in turn, so that load from other processes falls
on all of them alike. Speed does not depend on weight values: without --weights the model has
seeded random weights. On a machine shared with other work, run PyTorch with
OMP_WAIT_POLICY=PASSIVE: spinning OpenMP threads made its timings 3-5x worse there."""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..variants import VARIANTS, variant_spec
from .common import PRECISIONS

FRAME_WH = (854, 480)
BOX = (300.0, 110.0, 165.0, 255.0)
STAGES = ("template", "track", "mask", "step")
WARMUP = 2


@dataclass
class Candidate:
    """One engine at one precision, with its tracker and the per-stage samples (ms)."""

    engine: str
    precision: str
    tracker: object
    samples: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})


def _model(args: argparse.Namespace):
    import torch

    from ..model import build_model

    if args.weights:
        from ..api import load_model
        return load_model(args.weights, args.variant)[0].model
    torch.manual_seed(0)
    return build_model(args.variant or "sharp").eval()


def _frames() -> tuple[np.ndarray, np.ndarray]:
    from ..synthetic import make_sequence

    seq = make_sequence(num_frames=2, size=FRAME_WH, seed=0)
    return seq[0].image, seq[1].image


def _candidates(args: argparse.Namespace, model) -> tuple[list[Candidate], list[str]]:
    """Every requested (engine, precision) that can run here; a note for each that cannot."""
    from ..config import load_hp
    from ..engines.registry import ENGINES, build_engine
    from ..export.runtime import exported_graphs
    from ..tracker import Tracker

    hp = load_hp(args.hp or variant_spec(model.variant).default_hp)
    found, notes = [], []
    for name in [args.engine] if args.engine else list(ENGINES):
        for precision in [args.precision] if args.precision else list(PRECISIONS):
            print(f"siammask: preparing {name} {precision} ...", file=sys.stderr)
            try:
                engine = build_engine(name, model, args.device, precision, export=exported_graphs)
                found.append(Candidate(name, precision, Tracker(engine, hp)))
            except UserError as exc:
                if args.engine and args.precision:
                    raise
                notes.append(f"{name} {precision}: skipped ({exc})")
    return found, notes


def _time_step(c: Candidate, frame0: np.ndarray, frame1: np.ndarray, record: bool) -> None:
    """template, track and mask of the engine alone, then one whole Tracker.step from the init state."""
    import numpy as np

    from ..geometry.crop import crop_and_resize, search_scale, template_side, to_chw_float

    tracker, engine = c.tracker, c.tracker.engine
    (state,) = tracker.init(frame0, [BOX])
    z = to_chw_float([crop_and_resize(frame0, state.pos, template_side(state.size), 127, state.avg_color)])
    x = to_chw_float([crop_and_resize(frame1, state.pos, float(round(search_scale(state.size)[0])), 255,
                                      state.avg_color)])
    center = np.array([[12, 12]], np.int64)
    t0 = time.perf_counter()
    engine.template(z)
    t1 = time.perf_counter()
    heads = engine.track(x, state.features)
    t2 = time.perf_counter()
    engine.mask(heads, center)
    t3 = time.perf_counter()
    tracker.step(frame1, [state])
    t4 = time.perf_counter()
    if record:
        for stage, ms in zip(STAGES, np.diff([t0, t1, t2, t3, t4]) * 1000):
            c.samples[stage].append(float(ms))


def _summary(c: Candidate, device: str) -> dict:
    import numpy as np

    stages = {s: {"median_ms": statistics.median(v), "p90_ms": float(np.percentile(v, 90))}
              for s, v in c.samples.items()}
    return {"engine": c.engine, "device": device, "precision": c.precision,
            "step_ms_median": stages["step"]["median_ms"], "step_ms_p90": stages["step"]["p90_ms"],
            "step_ms_min": min(c.samples["step"]), "stages": stages}


def _table(records: list[dict]) -> str:
    rows = ["| engine | precision | template | track | mask | step median | step p90 | step min | frames/s |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        s = r["stages"]
        rows.append(f"| {r['engine']} | {r['precision']} | {s['template']['median_ms']:.1f} | "
                    f"{s['track']['median_ms']:.1f} | {s['mask']['median_ms']:.1f} | {r['step_ms_median']:.1f} | "
                    f"{r['step_ms_p90']:.1f} | {r['step_ms_min']:.1f} | {1000 / r['step_ms_median']:.1f} |")
    return "\n".join(rows)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..evaluation.timing import cpu_name
    from ..threads import set_inference_threads

    if args.steps < 1:
        raise UserError("--steps must be at least 1")
    set_inference_threads(args.threads)  # every engine's threads, torch's and ONNX Runtime's
    model = _model(args)
    frame0, frame1 = _frames()
    candidates, notes = _candidates(args, model)
    if not candidates:
        raise UserError("no engine/precision could run here: " + "; ".join(notes))
    for i in range(WARMUP + args.steps):
        for c in candidates:
            _time_step(c, frame0, frame1, record=i >= WARMUP)
    records = [_summary(c, args.device) for c in candidates]
    print(f"{model.variant} model, {FRAME_WH[0]}x{FRAME_WH[1]} frame, box {','.join(f'{v:g}' for v in BOX)}, "
          f"device {args.device}, torch threads {torch.get_num_threads()}, {args.steps} steps; medians in ms "
          "(mask: refine, or the mask head of base variants)\n")
    print(_table(records))
    for note in notes:
        print(f"\n- {note}", end="")
    print()
    if args.json:
        Path(args.json).write_text(json.dumps({
            "variant": model.variant, "frame_wh": FRAME_WH, "box": BOX, "steps": args.steps,
            "machine": {"cpu": cpu_name(), "cpus": os.cpu_count(), "load_average": os.getloadavg(),
                        "torch_threads": torch.get_num_threads(), "torch": torch.__version__},
            "records": records, "skipped": notes}, indent=2) + "\n")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="per-stage latency of each engine and precision at a realistic geometry")
    p.add_argument("--weights", help="checkpoint (.pth) (default: seeded random weights; speed does not "
                                     "depend on them)")
    p.add_argument("--variant", choices=VARIANTS, help="model variant (default: sharp, or as the "
                                                                "checkpoint says)")
    p.add_argument("--hp", help="hyper-parameters (default: davis for sharp, base for base)")
    p.add_argument("--engine", help="only this engine (default: every engine, side by side)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--precision", choices=PRECISIONS, help="only this precision (default: every precision)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per engine (default: 20)")
    p.add_argument("--threads", type=int, help="inference threads, torch and ONNX Runtime (default: one per physical core)")
    p.add_argument("--json", help="write the numbers as JSON here")
    p.set_defaults(func=run)
