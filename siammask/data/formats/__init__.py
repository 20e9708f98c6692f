"""Converters from public dataset layouts to FrameAnnotation records, by --format name.

Each converter is `read(root) -> Iterator[FrameAnnotation]`: it yields one record per annotated
frame, reading lazily, and raises UserError naming the file for layouts or files it cannot read.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .records import FrameAnnotation

Converter = Callable[[Path], Iterator["FrameAnnotation"]]

# --format name -> (module of this package, its converter). The converters and records import
# OpenCV and numpy, so they load on first use: the command line lists the names without them.
_CONVERTERS = {
    "coco": ("coco", "read_coco"),
    "ytb_vos": ("vos", "read_ytb_vos"),
    "vid": ("imagenet", "read_vid"),
    "det": ("imagenet", "read_det"),
    "davis": ("vos", "read_davis"),
    "segtrack": ("vos", "read_segtrack"),
    "vot": ("box_sequences", "read_vot"),
    "otb": ("box_sequences", "read_otb"),
    "yolo_seg": ("yolo", "read_yolo_seg"),
    "labelme": ("labelme", "read_labelme"),
}
FORMAT_NAMES = tuple(_CONVERTERS)


def _load(module: str, name: str) -> Any:
    return getattr(importlib.import_module(f".{module}", __name__), name)


def __getattr__(name: str) -> Any:
    """FORMATS (name -> converter) and the record types, imported when first asked for."""
    if name == "FORMATS":
        return {fmt: _load(*where) for fmt, where in _CONVERTERS.items()}
    if name in ("FrameAnnotation", "ObjectAnnotation"):
        return _load("records", name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["FORMATS", "FORMAT_NAMES", "Converter", "FrameAnnotation", "ObjectAnnotation"]
