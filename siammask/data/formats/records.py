"""The common record every converter yields, so one crop/write routine serves all formats."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..layouts.regions import Box


@dataclass(frozen=True)
class ObjectAnnotation:
    """One object in one frame. `box` is None when the object is absent from this frame (an empty
    mask, a NaN row); `ignore` says why the source marks it as not for training (crowd, ...)."""

    object_id: int
    box: Box | None
    mask: np.ndarray | None = None  # HxW bool, the frame's size
    ignore: str | None = None


@dataclass(frozen=True)
class FrameAnnotation:
    """One annotated frame. A still image is a one-frame video named after the image.
    `image` is a file, or the encoded bytes of an image embedded in the annotation (labelme);
    `source` is the annotation file, named in error messages."""

    video: str
    frame: int
    image: Path | bytes
    objects: tuple[ObjectAnnotation, ...]
    source: Path


def mask_box(mask: np.ndarray) -> Box | None:
    """Tight box of the mask's pixels (x, y, w, h with w = last - first + 1); None when empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return float(cols[0]), float(rows[0]), float(cols[-1] - cols[0] + 1), float(rows[-1] - rows[0] + 1)


def mask_object(object_id: int, mask: np.ndarray) -> ObjectAnnotation:
    """An object known by its mask alone: its box is the mask's tight box (absent when empty)."""
    return ObjectAnnotation(object_id, mask_box(mask), mask)


def polygon_mask(polygons: Sequence[np.ndarray], width: int, height: int) -> np.ndarray:
    """Fill (N, 2) frame-pixel polygons into one HxW bool mask (vertices rounded to pixels)."""
    canvas = np.zeros((height, width), np.uint8)
    cv2.fillPoly(canvas, [np.round(p).astype(np.int32).reshape(-1, 1, 2) for p in polygons], 1)
    return canvas.astype(bool)
