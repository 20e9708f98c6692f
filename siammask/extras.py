"""The optional parts of siammask and the pip extra that installs each. Tracking and serving with
the shipped default weights need none of them (their graphs ship prebuilt and run on ONNX Runtime);
training, exporting, .pth checkpoints and the torch back ends need torch. Whatever needs a missing
one says so in one line naming the extra (the CLI: exit status 2), never with a traceback."""
from __future__ import annotations

import importlib.util

from .errors import UserError

EXTRAS = {"torch": "torch", "onnx": "torch"}  # top-level module -> the extra that installs it


def missing(module: str, what: str) -> UserError:
    """The one-line error for `what` needing the optional `module`, which is not installed."""
    return UserError(f"{what} needs {module}, which is not installed: pip install \"siammask[{EXTRAS[module]}]\"")


def require(module: str, what: str) -> None:
    """Raise `missing(module, what)` unless the optional `module` can be imported."""
    if importlib.util.find_spec(module) is None:
        raise missing(module, what)
