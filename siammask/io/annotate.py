"""Drawing tracking results onto BGR frames for the annotated output video."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

# Distinct BGR colours, so several targets stay apart in one frame.
_PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 255, 0),
    (255, 128, 0),
    (0, 0, 255),
    (0, 255, 255),
    (255, 0, 255),
    (255, 255, 0),
    (0, 128, 255),
    (128, 0, 255),
)

MASK_ALPHA = 0.4
_THICKNESS = 2
LOST_COLOR = (160, 160, 160)  # BGR grey: a lost target's last box and label, whatever its own colour
DASH, GAP = 6, 4              # px along each side of a lost target's box: drawn, then left out


def target_color(index: int) -> tuple[int, int, int]:
    """BGR colour for target `index`; cycles through a small palette."""
    return _PALETTE[index % len(_PALETTE)]


def annotate(
    frame: np.ndarray,
    polygon: Sequence[float] | np.ndarray | None,
    mask: np.ndarray | None,
    box: Sequence[float] | None = None,
    color: tuple[int, int, int] = (0, 255, 0),
    label: str | None = None,
) -> np.ndarray:
    """Copy of the BGR frame with mask tint, rotated polygon, optional box and label.

    Returns a new image so the caller can chain calls, one per target, on the result.
    """
    out = frame.copy()
    if mask is not None:
        _blend_mask(out, mask, color)
    if polygon is not None:
        points = np.rint(np.asarray(polygon, dtype=np.float64).reshape(-1, 2)).astype(np.int32)
        cv2.polylines(out, [points], isClosed=True, color=color, thickness=_THICKNESS)
    if box is not None:
        x, y, w, h = (float(v) for v in box)
        cv2.rectangle(out, _point(x, y), _point(x + w, y + h), color, _THICKNESS)
    if label:
        _draw_label(out, label, _label_anchor(polygon, box), color)
    return out


def draw_target(frame: np.ndarray, target: int, polygon: Sequence[float] | np.ndarray, mask: np.ndarray | None,
                score: float, lost: bool) -> np.ndarray:
    """One target as the annotated videos draw it (`track --output`, serve's video and preview):
    tracked, its mask tint and polygon in its colour with 'ID: score'; lost (the tracker believes it
    is out of view), its last box dashed in LOST_COLOR with 'ID: lost' and no mask, so a box on the
    picture is never mistaken for a target that is there."""
    if not lost:
        return annotate(frame, polygon, mask, color=target_color(target), label=f"{target}: {score:.2f}")
    out = frame.copy()
    points = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    for start, end in zip(points, np.roll(points, -1, axis=0)):
        _dashed_line(out, start, end, LOST_COLOR)
    _draw_label(out, f"{target}: lost", _label_anchor(points, None), LOST_COLOR)
    return out


def _dashed_line(image: np.ndarray, start: np.ndarray, end: np.ndarray, color: tuple[int, int, int]) -> None:
    """From `start`, one point per pixel of length: DASH points drawn, GAP left out, and so on; each
    drawn point (rounded) paints the _THICKNESS x _THICKNESS square right of and below it, in place."""
    steps = max(int(np.ceil(np.hypot(*(end - start)))), 1)
    index = np.arange(steps + 1)
    drawn = index[index % (DASH + GAP) < DASH]
    xs, ys = np.rint(start[:, None] + (end - start)[:, None] * drawn / steps).astype(np.int64)
    height, width = image.shape[:2]
    for dy in range(_THICKNESS):
        for dx in range(_THICKNESS):
            x, y = xs + dx, ys + dy
            inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
            image[y[inside], x[inside]] = color


def _blend_mask(image: np.ndarray, mask: np.ndarray, color: tuple[int, int, int]) -> None:
    """Tint the mask's pixels in place with MASK_ALPHA of `color`."""
    inside = np.asarray(mask).astype(bool)
    if inside.shape != image.shape[:2]:
        raise ValueError(f"mask shape {inside.shape} does not match frame {image.shape[:2]}")
    tint = np.asarray(color, dtype=np.float32)
    blended = (1.0 - MASK_ALPHA) * image[inside].astype(np.float32) + MASK_ALPHA * tint
    image[inside] = np.clip(np.rint(blended), 0, 255).astype(image.dtype)


def _point(x: float, y: float) -> tuple[int, int]:
    return int(round(x)), int(round(y))


def _label_anchor(polygon: Sequence[float] | np.ndarray | None, box: Sequence[float] | None) -> tuple[int, int]:
    """Top-left of the drawn shape, where the label sits just above."""
    if box is not None:
        return _point(float(box[0]), float(box[1]))
    if polygon is not None:
        points = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
        return _point(points[:, 0].min(), points[:, 1].min())
    return 0, 0


def _draw_label(image: np.ndarray, text: str, anchor: tuple[int, int], color: tuple[int, int, int]) -> None:
    """Text above the anchor, pushed inside the frame when the target touches the top edge."""
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.5
    (_, text_height), baseline = cv2.getTextSize(text, font, scale, 1)
    x = min(max(anchor[0], 0), image.shape[1] - 1)
    y = max(anchor[1] - baseline, text_height)
    cv2.putText(image, text, (x, y), font, scale, color, 1, cv2.LINE_AA)
