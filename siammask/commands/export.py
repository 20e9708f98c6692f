"""`siammask export`: write verified ONNX graphs (or TensorRT engines) of a checkpoint to a directory."""
from __future__ import annotations

import argparse
import sys
from itertools import islice

from ..validate import box_text
from ..variants import VARIANTS


def _calibration(args: argparse.Namespace):
    """(frames, box) from --calib, or None for the synthetic default."""
    if not args.calib:
        return None
    from ..errors import UserError
    from ..export.calibration import DEFAULT_FRAMES
    from ..io.sources import open_source

    if args.calib_box is None:
        raise UserError("--calib needs --calib-box X,Y,W,H: the target in the first calibration frame")
    with open_source(args.calib) as source:
        frames = list(islice(source, DEFAULT_FRAMES))
    return frames, args.calib_box


def run(args: argparse.Namespace) -> int:
    from ..api import load_model
    from ..export.exporter import export_model
    from ..io.results import make_output_folder

    out = make_output_folder(args.out, "export")
    ckpt, hp = load_model(args.weights, args.variant, args.hp)
    info = export_model(ckpt.model, out, fmt=args.format, precision=args.precision, hp=hp, opset=args.opset,
                        calibration=_calibration(args), max_batch=args.max_batch)
    for check, result in info.verification.items():
        worst = max(e for per_graph in result["max_rel_error"].values() for e in per_graph.values())
        print(f"siammask: verified {check}: worst relative error {worst:.2g} (tolerance {result['tolerance']:g})",
              file=sys.stderr)
    print(f"siammask: wrote {info.variant} {info.precision} {info.backend} export ({', '.join(info.files.values())}) "
          f"to {out}", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a checkpoint to ONNX graphs or TensorRT engines")
    p.add_argument("--weights", help="checkpoint (.pth) (default: the project's shipped weights)")
    p.add_argument("--variant", choices=VARIANTS, help="model variant (default: as the checkpoint says)")
    p.add_argument("--hp", help="hyper-parameter preset recorded for the tracker (default: as the checkpoint "
                                "says, else davis for sharp, base for base)")
    p.add_argument("--format", choices=["onnx", "tensorrt"], default="onnx", help="default: onnx")
    p.add_argument("--precision", choices=["fp32", "fp16", "int8"], default="fp32", help="default: fp32")
    p.add_argument("--out", required=True, help="directory to write the graphs and siammask_export.json to")
    p.add_argument("--opset", type=int, help="ONNX opset (default: 17)")
    p.add_argument("--max-batch", type=int, default=8, help="TensorRT: largest batch of targets (default: 8)")
    p.add_argument("--calib", help="int8: video or image folder to calibrate on (default: synthetic frames)")
    p.add_argument("--calib-box", type=box_text, help="int8: target X,Y,W,H in the first --calib frame")
    p.set_defaults(func=run)
