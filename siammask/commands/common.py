"""Options and set-up shared by every command that runs a model (track, eval, bench, serve, export)."""
from __future__ import annotations

import argparse
from pathlib import Path

from siammask.engines.precision import PRECISIONS

from ..errors import UserError
from ..model import VARIANTS, variant_spec

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "default.pth"


def add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", help="checkpoint (.pth): official SiamMask_*.pth or our own, or a directory "
                                     "made by 'siammask export' (default: the project's shipped weights)")
    p.add_argument("--variant", choices=VARIANTS, help="model variant (default: as the checkpoint says)")
    p.add_argument("--hp", help="hyper-parameters: davis, vot, vot18, base or a YAML file "
                                "(default: davis for sharp, base for base)")
    p.add_argument("--engine", default="torch",
                   help="inference back end: torch, torch-compile (torch.compile: fastest on CPU with "
                        "--precision bf16, builds for ~30 s at start), onnxruntime, tensorrt (default: torch)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="fp32; bf16 (torch, CPU); fp16 (CUDA); int8 (onnxruntime/tensorrt) "
                        "(default: fp32, or what an export directory holds)")


def weights_path(args: argparse.Namespace) -> Path:
    """--weights, or the shipped default weights when there are any."""
    weights = Path(args.weights) if args.weights else DEFAULT_WEIGHTS
    if not args.weights and not weights.is_file():
        raise UserError("no --weights given and this installation ships no default weights; "
                        "pass --weights SiamMask_DAVIS.pth (or another SiamMask checkpoint)")
    return weights


def load_model(args: argparse.Namespace):
    """Checkpoint -> (LoadedCheckpoint, hyper-parameter preset name or YAML path)."""
    from ..checkpoint import load_checkpoint

    ckpt = load_checkpoint(weights_path(args), args.variant)
    return ckpt, args.hp or ckpt.config.get("hp") or variant_spec(ckpt.variant).default_hp


def build_tracker(args: argparse.Namespace):
    """Checkpoint (or export directory) + engine + hyper-parameters -> Tracker, all user errors as UserError."""
    from siammask.engines.registry import build_engine

    from ..config import load_hp
    from ..tracker import Tracker

    weights = weights_path(args)
    if weights.is_dir():
        from siammask.export.sidecar import read_sidecar

        info = read_sidecar(weights, check_files=False)  # the engine checks the files themselves
        if args.variant and args.variant != info.variant:
            raise UserError(f"'{weights}' holds an export of the {info.variant} model, but --variant "
                            f"{args.variant} was asked for")
        return Tracker(build_engine(args.engine, weights, args.device, args.precision), load_hp(args.hp or info.hp))
    ckpt, hp = load_model(args)
    return Tracker(build_engine(args.engine, ckpt.model, args.device, args.precision), load_hp(hp))
