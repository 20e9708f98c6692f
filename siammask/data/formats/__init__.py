"""Converters from public dataset layouts to FrameAnnotation records, by --format name.

Each converter is `read(root) -> Iterator[FrameAnnotation]`: it yields one record per annotated
frame, reading lazily, and raises UserError naming the file for layouts or files it cannot read.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from .box_sequences import read_otb, read_vot
from .coco import read_coco
from .imagenet import read_det, read_vid
from .labelme import read_labelme
from .records import FrameAnnotation, ObjectAnnotation
from .vos import read_davis, read_segtrack, read_ytb_vos
from .yolo import read_yolo_seg

Converter = Callable[[Path], Iterator[FrameAnnotation]]

FORMATS: dict[str, Converter] = {
    "coco": read_coco,
    "ytb_vos": read_ytb_vos,
    "vid": read_vid,
    "det": read_det,
    "davis": read_davis,
    "segtrack": read_segtrack,
    "vot": read_vot,
    "otb": read_otb,
    "yolo_seg": read_yolo_seg,
    "labelme": read_labelme,
}

__all__ = ["FORMATS", "Converter", "FrameAnnotation", "ObjectAnnotation"]
