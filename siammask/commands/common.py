"""Options and set-up shared by every command that runs a model (track, eval, bench, serve, export)."""
from __future__ import annotations

import argparse

from ..engines.names import AUTO
from ..engines.precision import PRECISIONS
from ..variants import VARIANTS


def add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", help="checkpoint (.pth): official SiamMask_*.pth or our own, or a directory "
                                     "made by 'siammask export' (default: the project's shipped weights)")
    p.add_argument("--variant", choices=VARIANTS, help="model variant (default: as the checkpoint says)")
    p.add_argument("--hp", help="hyper-parameters: davis, vot, vot18, base, nano or a YAML file (default: "
                                "as the checkpoint records, else davis for sharp, base for base, nano for nano)")
    p.add_argument("--engine", default=AUTO,
                   help="inference back end: auto, torch, torch-compile (torch.compile: fastest on CPU with "
                        "--precision bf16, builds for ~30 s at start), onnxruntime, tensorrt (default: auto: "
                        "on a CPU in fp32 the back end measured fastest for the model, onnxruntime for the "
                        "default nano weights (exported once, kept in ~/.cache/siammask), else torch)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--redetect", action=argparse.BooleanOptionalAction, default=None,
                   help="search the whole frame for a target that is lost and take it up again when it is "
                        "found (--no-redetect: only flag it lost and keep tracking locally, as short-term "
                        "trackers and VOT's supervised protocol do) (default: as the hyper-parameters say: "
                        "on for nano, off for the official models)")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="fp32; bf16 (torch, CPU); fp16 (CUDA); int8 (onnxruntime/tensorrt) "
                        "(default: fp32, or what an export directory holds)")


def build_tracker(args: argparse.Namespace):
    """The model options -> siammask.load_tracker (all user errors as UserError)."""
    from ..api import load_tracker

    return load_tracker(args.weights, variant=args.variant, hp=args.hp, engine=args.engine, device=args.device,
                        redetect=args.redetect,
                        precision=args.precision)
