"""Typed, frozen configuration loaded from YAML; an unknown or missing key is an error."""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from .cache_dir import cache_root, private, publish
from .errors import UserError
from .variants import VARIANT_SPECS

try:
    from importlib.resources.abc import Traversable
except ImportError:  # Python 3.10
    from importlib.abc import Traversable

# The shipped YAML files, wherever the package is installed (the repository's configs/ folder
# installs as the package siammask.configs).
CONFIG_DIR: Traversable = resources.files("siammask.configs")
T = TypeVar("T")


@dataclass(frozen=True)
class Range:
    """The allowed values of a number field (of each item, for a tuple field, and how many)."""

    lo: float
    hi: float
    lo_open: bool = False                  # lo itself is not allowed: (lo, hi]
    items: tuple[int, int] | None = None   # a tuple field: how many items it may have

    def check(self, value: Any, where: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                self.check(item, f"{where}.{key}")
            return
        if isinstance(value, tuple):
            if self.items and not self.items[0] <= len(value) <= self.items[1]:
                raise UserError(f"{where} must have {self.items[0]} to {self.items[1]} values, got {len(value)}")
            for item in value:
                self.check(item, where)
            return
        if not (self.lo < value if self.lo_open else self.lo <= value) or value > self.hi:
            bounds = f"{'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}]"
            raise UserError(f"{where} must be in {bounds}, got {value!r}")


def ranged(lo: float, hi: float, default: Any = dataclasses.MISSING, *, lo_open: bool = False,
           items: tuple[int, int] | None = None) -> Any:
    """A dataclass field whose value from_dict (and check_ranges) keep within [lo, hi]."""
    return field(default=default, metadata={"range": Range(lo, hi, lo_open, items)})


@dataclass(frozen=True)
class TrackerConfig:
    """Tracker hyper-parameters (reference section 3). Sizes are in pixels of the crops.
    Every field has its allowed range; an hp file outside it is refused by name."""

    penalty_k: float = ranged(0.0, 1.0)
    window_influence: float = ranged(0.0, 1.0)
    lr: float = ranged(0.0, 1.0)
    seg_thr: float = ranged(0.0, 1.0)
    # Long-term tracking (siammask.presence, README "Lost and found"): a target is lost when its
    # presence (smoothed: presence_smooth is the weight of the previous value) falls below
    # lost_threshold; while lost it is searched for over the whole frame (redetect, redetect_tiles
    # search windows per frame, one engine batch) and found again only when a candidate's presence
    # reaches found_threshold on confirm_frames frames in a row at the same place.
    lost_threshold: float = ranged(0.0, 1.0, 0.3)
    found_threshold: float = ranged(0.0, 1.0, 0.6)
    presence_smooth: float = ranged(0.0, 0.99, 0.5)
    memory_rate: float = ranged(0.0, 1.0, 0.05)  # how fast the verified appearance follows the target
    confirm_frames: int = ranged(1, 30, 2)
    # A target whose smoothed presence is at least verify_above has it measured on every
    # verify_every-th frame only (1: every frame); Tracker._trusted.
    verify_every: int = ranged(1, 30, 1)
    verify_above: float = ranged(0.0, 1.0, 0.95)
    redetect: bool = False  # on in the nano preset
    redetect_tiles: int = ranged(1, 256, 8)
    redetect_peaks: int = ranged(1, 16, 3)  # distinct places per re-detection window whose presence is checked
    # Ours (preset nano): a guided filter on the frame's colours moves the pasted-back mask's
    # boundary onto image edges (geometry.masks.guided_refine): its radius in mask pixels (0: off,
    # as the original) and the guide's noise level as a fraction of the 0-255 range.
    mask_guide_radius: float = ranged(0.0, 64.0, 0.0)
    mask_guide_eps: float = ranged(0.0, 1.0, 0.006, lo_open=True)
    exemplar_size: int = ranged(16, 1024, 127)
    instance_size: int = ranged(32, 2048, 255)
    context_amount: float = ranged(0.0, 4.0, 0.5)
    # The score map's stride, size and anchors belong to the model variant (siammask.variants).

    def __post_init__(self) -> None:
        """The rules between fields (each field's own range is checked by from_dict)."""
        if not all(isinstance(v, int) and v > 0 for v in (self.instance_size, self.exemplar_size)):
            return  # a wrong type or range: from_dict says which field
        if self.instance_size <= self.exemplar_size:
            raise UserError(f"instance_size ({self.instance_size}) must be larger than exemplar_size "
                            f"({self.exemplar_size}): the search crop holds the template")
        if self.found_threshold < self.lost_threshold:
            raise UserError(f"found_threshold ({self.found_threshold}) must not be below lost_threshold "
                            f"({self.lost_threshold}): a target would be found and lost on the same evidence")
        if self.verify_above < self.found_threshold:
            raise UserError(f"verify_above ({self.verify_above}) must not be below found_threshold "
                            f"({self.found_threshold}): a target in doubt would skip its measurements")


def _coerce(value: Any, kind: Any, where: str) -> Any:
    origin = typing.get_origin(kind)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{where}: expected a list, got {value!r}")
        inner = typing.get_args(kind)[0]
        return tuple(_coerce(v, inner, where) for v in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise UserError(f"{where}: expected a mapping, got {value!r}")
        key_kind, value_kind = typing.get_args(kind)
        return {_coerce(k, key_kind, f"{where} key"): _coerce(v, value_kind, f"{where}.{k}") for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        inner = [a for a in typing.get_args(kind) if a is not type(None)]
        return _coerce(value, inner[0], where) if len(inner) == 1 else value
    if dataclasses.is_dataclass(kind):
        return from_dict(kind, value, where)
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise UserError(f"{where}: expected a finite number, got {value!r}")
        return number
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
    values = {k: _coerce(v, hints[k], f"{where}: {k}") for k, v in data.items()}  # errors name their key already
    try:
        obj = cls(**values)
    except TypeError as exc:
        raise UserError(f"{where}: {exc}") from None
    except UserError as exc:  # a check across fields (__post_init__)
        raise UserError(f"{where}: {exc}") from None
    check_ranges(obj, where)
    return obj


def check_ranges(obj: Any, where: str = "config") -> None:
    """Every field with a Range, here and in nested dataclasses: for objects built in code
    (command-line overrides), which from_dict never saw."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if value is None:
            continue
        if "range" in f.metadata:
            f.metadata["range"].check(value, f"{where}: {f.name}")
        for item in value if isinstance(value, tuple) else (value,):
            if dataclasses.is_dataclass(item):
                check_ranges(item, f"{where}: {f.name}")


@functools.cache
def _loader() -> type:
    """SafeLoader that also reads YAML 1.2 floats without a dot (1e-2), which YAML 1.1 calls strings.
    Made, and PyYAML imported, on the first file read: `siammask ctl` without --config reads none."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                                 re.compile(r"^[-+]?[0-9]+(?:\.[0-9]*)?[eE][-+]?[0-9]+$"), list("-+0123456789"))
    return Loader


def _parse_yaml(path: str | Path | Traversable, text: str) -> Any:
    import yaml

    try:
        return yaml.load(text, Loader=_loader()) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"config '{path}' is not valid YAML: {str(exc).splitlines()[0]}") from None


def load_yaml(cls: type[T], path: str | Path | Traversable) -> T:
    """Read one YAML file (a path, or a packaged file under CONFIG_DIR) into `cls`."""
    if isinstance(path, str):
        path = Path(path)
    if not path.is_file():
        raise UserError(f"config '{path}' not found")
    return from_dict(cls, _parse_yaml(path, path.read_text()), str(path))


def _preset_data(path: Traversable) -> Any:
    """A shipped preset's YAML, parsed once per machine: its data is kept as JSON in the cache under
    a digest of the text, so `track` reads its preset without importing PyYAML (20-30 ms of its
    start-up, benchmarks/RESULTS.md). Data JSON would change (none in the shipped presets), a cache
    that cannot be named, read or written, and an entry another user could have written fall back
    to PyYAML. The key covers this module's own source too: a release that parses presets
    differently (its loader rules live here) does not read what an older one cached."""
    text = path.read_text()
    try:
        digest = hashlib.sha256(text.encode() + Path(__file__).read_bytes()).hexdigest()[:32]
    except OSError:  # no source file to key on (a zipped or frozen install): no cache
        return _parse_yaml(path, text)
    try:
        cached = cache_root() / "presets" / f"{digest}.json"
        with cached.open("rb") as f:
            status = os.fstat(f.fileno())
            if private(status):
                return json.loads(f.read())
    except (OSError, ValueError):
        pass
    data = _parse_yaml(path, text)
    try:
        cached = cache_root() / "presets" / f"{digest}.json"
        kept = json.dumps(data)
        if json.loads(kept) == data:
            cached.parent.mkdir(parents=True, exist_ok=True)
            work = cached.with_name(f".{cached.name}.{os.getpid()}")  # whole or absent: processes start together
            work.write_text(kept)
            publish(work, cached)
    except (OSError, TypeError, ValueError):
        pass
    return data


HP_PRESETS = ("davis", "vot", "vot18", "base", "nano")
# The preset a variant tracks with when neither the user nor the checkpoint names one.
DEFAULT_HP = {name: spec.default_hp for name, spec in VARIANT_SPECS.items()}


def load_hp(name_or_path: str) -> TrackerConfig:
    """A shipped preset (configs/hp: davis, vot, vot18, base, nano) or a path to a YAML file."""
    if name_or_path in HP_PRESETS:
        preset = CONFIG_DIR / "hp" / f"{name_or_path}.yaml"
        return from_dict(TrackerConfig, _preset_data(preset), str(preset))
    if name_or_path.endswith((".yaml", ".yml")):
        return load_yaml(TrackerConfig, name_or_path)
    raise UserError(f"unknown hyper-parameter set '{name_or_path}'; use one of {', '.join(HP_PRESETS)} "
                    "or a .yaml file")
