"""Options and set-up shared by every command that runs a model (track, eval, bench, serve)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "default.pth"
DEFAULT_HP = {"sharp": "davis", "base": "base"}


def add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", help="checkpoint (.pth): official SiamMask_*.pth or our own "
                                     "(default: the project's shipped weights)")
    p.add_argument("--variant", choices=["sharp", "base"], help="model variant (default: as the checkpoint says)")
    p.add_argument("--hp", help="hyper-parameters: davis, vot, vot18, base or a YAML file "
                                "(default: davis for sharp, base for base)")
    p.add_argument("--engine", default="torch", help="inference back end (default: torch)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")


def build_tracker(args: argparse.Namespace):
    """Checkpoint + engine + hyper-parameters -> Tracker, all user errors as UserError."""
    from engines.registry import build_engine

    from ..checkpoint import load_checkpoint
    from ..config import load_hp
    from ..tracker import Tracker

    weights = Path(args.weights) if args.weights else DEFAULT_WEIGHTS
    if not args.weights and not weights.is_file():
        raise UserError("no --weights given and this installation ships no default weights; "
                        "pass --weights SiamMask_DAVIS.pth (or another SiamMask checkpoint)")
    ckpt = load_checkpoint(weights, args.variant)
    hp = load_hp(args.hp or ckpt.config.get("hp") or DEFAULT_HP[ckpt.variant])
    return Tracker(build_engine(args.engine, ckpt.model, args.device), hp)
