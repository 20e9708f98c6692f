"""The one place that maps an engine name to its back end (no if/elif chains elsewhere)."""
from __future__ import annotations

from collections.abc import Callable

from siammask.errors import UserError
from siammask.model import SiamMask

from .base import Engine


def _torch(model: SiamMask, device: str) -> Engine:
    from .torch_engine import TorchEngine
    return TorchEngine(model, device)


ENGINES: dict[str, Callable[[SiamMask, str], Engine]] = {"torch": _torch}


def build_engine(name: str, model: SiamMask, device: str = "cpu") -> Engine:
    """Wrap a loaded model in the named back end."""
    if name not in ENGINES:
        raise UserError(f"unknown engine '{name}'; available: {', '.join(sorted(ENGINES))}")
    return ENGINES[name](model, device)
