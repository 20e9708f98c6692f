"""Square crops around a target, padded with the average colour, as the original cuts them."""
from __future__ import annotations

import cv2
import numpy as np


def context_side(size_wh: np.ndarray, context: float = 0.5) -> np.float64:
    """Side of the square that holds the target plus context: sqrt((w+p)(h+p)), p = context*(w+h).
    Kept as numpy float64 on purpose: float32 arrays divided by it then promote to float64, as in
    the original tracker."""
    w, h = np.float64(size_wh[0]), np.float64(size_wh[1])
    pad = context * (w + h)
    return np.sqrt((w + pad) * (h + pad))


def template_side(size_wh: np.ndarray, context: float = 0.5) -> float:
    """Template crop side, rounded half-to-even like Python's round."""
    return float(round(context_side(size_wh, context)))


def search_scale(size_wh: np.ndarray, exemplar: int = 127, instance: int = 255,
                 context: float = 0.5) -> tuple[np.float64, np.float64]:
    """(s_x, scale): unrounded search-region side in frame pixels and crop pixels per frame pixel."""
    s_z = context_side(size_wh, context)
    scale = exemplar / s_z
    return s_z + 2 * ((instance - exemplar) / 2) / scale, scale


def crop_origin(center_xy: np.ndarray, side: float) -> tuple[int, int]:
    """Top-left integer pixel of a crop of `side` pixels around center: round(c - (side+1)/2)."""
    c = (side + 1) / 2
    return int(round(center_xy[0] - c)), int(round(center_xy[1] - c))


def crop_and_resize(image: np.ndarray, center_xy: np.ndarray, side: float, out_size: int,
                    fill_bgr: np.ndarray) -> np.ndarray:
    """Cut a side x side square (side already rounded) around center_xy, filling outside the
    frame with fill_bgr truncated to uint8, then resize (INTER_LINEAR) to out_size.

    Only the square itself is allocated, never a padded copy of the whole frame."""
    sz = int(side)
    x0, y0 = crop_origin(center_xy, side)
    h, w = image.shape[:2]
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x0 + sz, w), min(y0 + sz, h)
    fill = np.asarray(fill_bgr).astype(np.uint8)
    if ix1 <= ix0 or iy1 <= iy0:  # nothing of the frame: one colour whatever the size
        return np.full((out_size, out_size, 3), fill, np.uint8)
    if (ix0, iy0, ix1, iy1) == (x0, y0, x0 + sz, y0 + sz):
        patch = image[y0:y0 + sz, x0:x0 + sz]
    else:
        # copyMakeBorder pads in one pass; filling a fresh array with a 3-vector through numpy
        # broadcasting first costs ~2.5 ms for an 840 px square.
        patch = cv2.copyMakeBorder(image[iy0:iy1, ix0:ix1], iy0 - y0, y0 + sz - iy1, ix0 - x0,
                                   x0 + sz - ix1, cv2.BORDER_CONSTANT, value=[int(v) for v in fill])
    if sz != out_size:
        patch = cv2.resize(patch, (out_size, out_size), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(patch)


def to_chw_float(patches: list[np.ndarray]) -> np.ndarray:
    """HxWx3 uint8 BGR crops -> (B,3,H,W) float32 raw 0..255, the network's input layout. Each
    colour plane is split off by OpenCV and converted as it is copied in: half the time of a
    strided transpose-and-convert (44 against 88 us per 255x255 crop, benchmarks/RESULTS.md)."""
    if not patches:
        raise ValueError("no crops")
    out = np.empty((len(patches), 3, *patches[0].shape[:2]), np.float32)
    for crop, planes in zip(patches, out):
        if crop.shape != (*out.shape[2:], 3):
            raise ValueError(f"a crop of shape {crop.shape} among crops of {(*out.shape[2:], 3)}")
        for plane, channel in zip(planes, cv2.split(crop)):
            plane[...] = channel
    return out
