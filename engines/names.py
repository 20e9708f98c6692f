"""The inference engines' names, for every place that offers or checks one: `--engine`, a serve
config's `model.engine`, and engines/registry.py, which maps each name to its back end and holds
the rule `auto` follows. Free of numpy and of every back end, so the command line and the serve
config check a name before anything heavy is imported."""
from __future__ import annotations

from siammask.errors import UserError

AUTO = "auto"  # chosen for the model and device (registry.resolve_engine)
BACKENDS = ("torch", "torch-compile", "onnxruntime", "tensorrt")
ENGINE_CHOICES = (AUTO, *BACKENDS)


def check_engine(name: str, key: str | None = None) -> str:
    """`name` if it is an engine (auto included); else a UserError, prefixed with the config `key` given."""
    if name not in ENGINE_CHOICES:
        prefix = f"{key}: " if key else ""
        raise UserError(f"{prefix}unknown engine '{name}'; available: {', '.join(ENGINE_CHOICES)}")
    return name
