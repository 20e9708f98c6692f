"""Ready for a GPU in one call (issue 22, item 6): benchmarks/gpu_check.sh installs what this needs
on a machine with an NVIDIA GPU and runs it.

For the default (nano) and the sharp model it exports graphs for ONNX Runtime's CUDA provider and
TensorRT engines, each in fp32 and fp16, checks every GPU engine against ONNX Runtime on the CPU
(fp32 graphs of the same weights) and prints one JSON line: step times for 1, 8 and 32 targets per
engine and precision, the parity figures, the GPU and the library versions.

    python benchmarks/gpu_check.py [--sharp-weights SiamMask_DAVIS.pth] [--frames 20] [--batches 1,8,32]

Parity: on each frame of a synthetic sequence both trackers step from the same state (the CPU's,
with each engine's own template features), so that one frame's difference cannot grow over the
next; the worst box difference (px) and the lowest mask IoU are compared. fp32 must agree within
1 px and IoU 0.98, fp16 within 4 px and IoU 0.9; otherwise the line says `"ok": false` and the
exit status is 1. Without --sharp-weights the sharp model has seeded random weights: its step
times are the real model's (they do not depend on the values) and its parity still compares the
engines on one set of weights. "onnxruntime-cuda" runs on ONNX Runtime's CUDA provider alone (the
engine would put TensorRT's provider first where it is installed; TensorRT is timed as our own
`--engine tensorrt`)."""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from siammask.api import load_model
from siammask.config import load_hp
from siammask.engines.onnx_session import open_session
from siammask.engines.registry import build_engine
from siammask.evaluation.regions import box_iou
from siammask.evaluation.segmentation import jaccard
from siammask.export.exporter import export_model
from siammask.export.onnx_export import GRAPH_FILES
from siammask.synthetic import make_sequence
from siammask.tracker import Tracker

PRECISIONS = ("fp32", "fp16")
# (box px, mask IoU) limits of a GPU engine against the CPU one, per precision
LIMITS = {"fp32": (1.0, 0.98), "fp16": (4.0, 0.9)}
WARMUP = 3
FRAME_SIZE = (854, 480)


def models(sharp_weights: str | None) -> dict:
    """name -> (loaded model, hp preset): the shipped default and the sharp model."""
    import torch

    from siammask.model import build_model

    nano, nano_hp = load_model()
    if sharp_weights:
        sharp, sharp_hp = load_model(sharp_weights, "sharp")
        return {"nano": (nano.model, nano_hp), "sharp": (sharp.model, sharp_hp)}
    torch.manual_seed(0)
    return {"nano": (nano.model, nano_hp), "sharp": (build_model("sharp").eval(), "davis")}


def cuda_only(engine, folder: Path):
    """The ONNX Runtime engine's sessions on the CUDA provider alone (falling back to the CPU per node)."""
    providers = [("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]
    engine.sessions = {role: open_session(folder / GRAPH_FILES[role], providers) for role in engine.sessions}
    return engine


def engines(model, hp: str, work: Path, max_batch: int) -> dict[str, Tracker]:
    """The CPU reference and every GPU engine of one model, each as a Tracker."""
    config = load_hp(hp)
    folder = work / "onnx-fp32"
    export_model(model, folder, precision="fp32", hp=hp)
    out = {"cpu": Tracker(build_engine("onnxruntime", folder, "cpu"), config)}
    for precision in PRECISIONS:
        if precision != "fp32":
            folder = work / f"onnx-{precision}"
            export_model(model, folder, precision=precision, hp=hp)
        engine = cuda_only(build_engine("onnxruntime", folder, "cuda", precision), folder)
        out[f"onnxruntime-cuda-{precision}"] = Tracker(engine, config)
        trt = work / f"tensorrt-{precision}"
        export_model(model, trt, fmt="tensorrt", precision=precision, hp=hp, max_batch=max_batch)
        out[f"tensorrt-{precision}"] = Tracker(build_engine("tensorrt", trt, "cuda", precision), config)
    return out


def _iou(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """Mask IoU where a lost target has no mask (None): two Nones agree, one None does not."""
    if a is None or b is None:
        return 1.0 if a is None and b is None else 0.0
    return jaccard(a, b)


def parity(cpu: Tracker, gpu: Tracker, frames: list[np.ndarray], box) -> dict[str, float]:
    """Worst box difference (px), lowest mask IoU and lowest box IoU of `gpu` against `cpu`."""
    ours = gpu.init(frames[0], [box])
    reference = cpu.init(frames[0], [box])
    worst_px, mask_ious, box_ious = 0.0, [], []
    for frame in frames[1:]:
        _, (got,) = gpu.step(frame, [replace(reference[0], features=ours[0].features)])
        reference, (want,) = cpu.step(frame, reference)
        worst_px = max(worst_px, float(np.abs(np.subtract(got.box, want.box)).max()))
        box_ious.append(float(box_iou(np.array([got.box]), np.array([want.box]))[0]))
        mask_ious.append(_iou(got.mask, want.mask))
    return {"box_px": round(worst_px, 3), "mask_iou_min": round(min(mask_ious), 4),
            "box_iou_min": round(min(box_ious), 4)}


def step_ms(tracker: Tracker, frames: list[np.ndarray], box, targets: int) -> float:
    """Median ms of one step over `targets` targets (the box moved by a few pixels each)."""
    x, y, w, h = box
    boxes = [(x + 2 * (i % 4) - 3, y + 2 * (i // 4 % 4) - 3, w, h) for i in range(targets)]
    states = tracker.init(frames[0], boxes)
    times = []
    for index, frame in enumerate(frames[1:]):
        start = time.perf_counter()
        states, _ = tracker.step(frame, states)
        if index >= WARMUP:
            times.append((time.perf_counter() - start) * 1000)
    return round(float(np.median(times)), 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sharp-weights", help="an official SiamMask_DAVIS.pth (default: seeded random weights)")
    parser.add_argument("--frames", type=int, default=20, help="frames of the synthetic sequence (default: 20)")
    parser.add_argument("--batches", default="1,8,32", help="target counts to time (default: 1,8,32)")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    if args.frames < WARMUP + 2 or min(batches) < 1:
        print(f"gpu_check: --frames must be at least {WARMUP + 2} and every batch at least 1", file=sys.stderr)
        return 2
    import onnxruntime
    import tensorrt
    import torch

    if not torch.cuda.is_available():
        print("gpu_check: torch sees no CUDA device; run this on a machine with an NVIDIA GPU", file=sys.stderr)
        return 2
    if hasattr(onnxruntime, "preload_dlls"):  # the CUDA and cuDNN libraries torch's wheels brought
        onnxruntime.preload_dlls()
    started = time.perf_counter()
    sequence = make_sequence(num_frames=args.frames, size=FRAME_SIZE, seed=11)
    frames, box = [f.image for f in sequence], sequence[0].box
    report = {"gpu": torch.cuda.get_device_name(0), "onnxruntime": onnxruntime.__version__,
              "tensorrt": tensorrt.__version__, "torch": torch.__version__, "frames": args.frames,
              "frame_size": list(FRAME_SIZE), "weights_sharp": args.sharp_weights or "seeded random",
              "steps_ms": {}, "parity": {}, "ok": True}
    for name, (model, hp) in models(args.sharp_weights).items():
        with tempfile.TemporaryDirectory(prefix=f"gpu-check-{name}-") as work:
            trackers = engines(model, hp, Path(work), max(batches))
            cpu = trackers.pop("cpu")
            report["steps_ms"][name] = {"onnxruntime-cpu-fp32": {"1": step_ms(cpu, frames, box, 1)}}
            report["parity"][name] = {}
            for label, tracker in trackers.items():
                check = parity(cpu, tracker, frames, box)
                px, iou = LIMITS[label.rsplit("-", 1)[1]]
                check["ok"] = check["box_px"] <= px and check["mask_iou_min"] >= iou
                report["ok"] = report["ok"] and check["ok"]
                report["parity"][name][label] = check
                report["steps_ms"][name][label] = {str(n): step_ms(tracker, frames, box, n) for n in batches}
    report["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
