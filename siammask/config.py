"""Typed, frozen configuration loaded from YAML; an unknown or missing key is an error."""
from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .errors import UserError

try:
    from importlib.resources.abc import Traversable
except ImportError:  # Python 3.10
    from importlib.abc import Traversable

# The shipped YAML files, wherever the package is installed (the repository's configs/ folder
# installs as the package siammask.configs).
CONFIG_DIR: Traversable = resources.files("siammask.configs")
T = TypeVar("T")


@dataclass(frozen=True)
class TrackerConfig:
    """Tracker hyper-parameters (reference section 3). Sizes are in pixels of the crops."""

    penalty_k: float
    window_influence: float
    lr: float
    seg_thr: float
    lost_threshold: float = 0.3  # score below which a frame's result is flagged lost
    exemplar_size: int = 127
    instance_size: int = 255
    total_stride: int = 8
    base_size: int = 8
    context_amount: float = 0.5
    ratios: tuple[float, ...] = (0.33, 0.5, 1.0, 2.0, 3.0)
    scales: tuple[float, ...] = (8.0,)

    @property
    def score_size(self) -> int:
        return (self.instance_size - self.exemplar_size) // self.total_stride + 1 + self.base_size

    @property
    def num_anchors(self) -> int:
        return len(self.ratios) * len(self.scales)


def _coerce(value: Any, kind: Any, where: str) -> Any:
    origin = typing.get_origin(kind)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{where}: expected a list, got {value!r}")
        inner = typing.get_args(kind)[0]
        return tuple(_coerce(v, inner, where) for v in value)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        inner = [a for a in typing.get_args(kind) if a is not type(None)]
        return _coerce(value, inner[0], where) if len(inner) == 1 else value
    if dataclasses.is_dataclass(kind):
        return from_dict(kind, value, where)
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind in (str, bool) and isinstance(value, kind):
        return value
    raise UserError(f"{where}: expected {getattr(kind, '__name__', kind)}, got {value!r}")


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build a frozen dataclass from a mapping, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise UserError(f"{where}: expected a mapping of keys to values")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    try:
        return cls(**{k: _coerce(v, hints[k], f"{where}: {k}") for k, v in data.items()})
    except TypeError as exc:
        raise UserError(f"{where}: {exc}") from None


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads YAML 1.2 floats without a dot (1e-2), which YAML 1.1 calls strings."""


_Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                              re.compile(r"^[-+]?[0-9]+(?:\.[0-9]*)?[eE][-+]?[0-9]+$"), list("-+0123456789"))


def load_yaml(cls: type[T], path: str | Path | Traversable) -> T:
    """Read one YAML file (a path, or a packaged file under CONFIG_DIR) into `cls`."""
    if isinstance(path, str):
        path = Path(path)
    if not path.is_file():
        raise UserError(f"config '{path}' not found")
    try:
        data = yaml.load(path.read_text(), Loader=_Loader) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"config '{path}' is not valid YAML: {str(exc).splitlines()[0]}") from None
    return from_dict(cls, data, str(path))


HP_PRESETS = ("davis", "vot", "vot18", "base")
# The preset a variant tracks with when neither the user nor the checkpoint names one.
DEFAULT_HP = {"sharp": "davis", "base": "base", "lite": "davis", "lite-base": "base"}


def load_hp(name_or_path: str) -> TrackerConfig:
    """A shipped preset (configs/hp: davis, vot, vot18, base) or a path to a YAML file."""
    if name_or_path in HP_PRESETS:
        return load_yaml(TrackerConfig, CONFIG_DIR / "hp" / f"{name_or_path}.yaml")
    if name_or_path.endswith((".yaml", ".yml")):
        return load_yaml(TrackerConfig, name_or_path)
    raise UserError(f"unknown hyper-parameter set '{name_or_path}'; use one of {', '.join(HP_PRESETS)} "
                    "or a .yaml file")
