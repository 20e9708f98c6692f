"""Region overlaps: axis-aligned boxes (OTB) and polygons clipped to the image (VOT).

Polygon intersection is exact (Sutherland-Hodgman clipping against a convex polygon): VOT's own
toolkit rasterises regions, so its overlaps differ from these by pixel-discretisation only.
"""
from __future__ import annotations

import numpy as np


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of (N, 4) x,y,w,h boxes row by row, continuous coordinates (no +1 pixel convention)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    w = np.clip(np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    h = np.clip(np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = w * h
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def box_centers(boxes: np.ndarray) -> np.ndarray:
    """(N, 2) centres of x,y,w,h boxes."""
    boxes = np.asarray(boxes, np.float64)
    return boxes[:, :2] + boxes[:, 2:] / 2


def polygon_area(points: np.ndarray) -> float:
    """Unsigned shoelace area of a (K, 2) polygon (0 for fewer than 3 points)."""
    if len(points) < 3:
        return 0.0
    x, y = points[:, 0], points[:, 1]
    return abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))) / 2


def is_convex(points: np.ndarray) -> bool:
    """All turns in one direction (collinear corners allowed)."""
    edges = np.roll(points, -1, axis=0) - points
    turns = edges[:, 0] * np.roll(edges[:, 1], -1) - edges[:, 1] * np.roll(edges[:, 0], -1)
    return bool(np.all(turns >= -1e-9) or np.all(turns <= 1e-9))


def clip_polygon(subject: np.ndarray, clip: np.ndarray) -> np.ndarray:
    """The part of `subject` inside the convex polygon `clip` (any orientation); subject may be concave."""
    clip = np.asarray(clip, np.float64)
    if not is_convex(clip):
        raise ValueError("clip polygon must be convex")
    if _signed_area(clip) < 0:
        clip = clip[::-1]
    out = np.asarray(subject, np.float64)
    for start, end in zip(clip, np.roll(clip, -1, axis=0)):
        if len(out) == 0:
            break
        out = _clip_half_plane(out, start, end)
    return out


def region_overlap(a: np.ndarray, b: np.ndarray, bounds: tuple[float, float] | None = None) -> float:
    """IoU of polygon `a` and convex polygon `b`, both first cut to [0, W] x [0, H] when bounds=(W, H),
    as VOT scores only the visible part. Two empty regions overlap by 1, as in the VOT toolkit."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if bounds is not None:
        frame = box_polygon((0.0, 0.0, bounds[0], bounds[1]))
        a, b = clip_polygon(a, frame), clip_polygon(b, frame)
    area_a, area_b = polygon_area(a), polygon_area(b)
    if area_a == 0 and area_b == 0:
        return 1.0
    if area_a == 0 or area_b == 0:
        return 0.0
    inter = polygon_area(clip_polygon(a, b))
    return inter / (area_a + area_b - inter)


def box_polygon(box: tuple[float, float, float, float]) -> np.ndarray:
    """Corners of an x,y,w,h box, clockwise in image coordinates."""
    x, y, w, h = box
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float64)


def area_preserving_box(polygon: np.ndarray) -> tuple[float, float, float, float]:
    """Axis-aligned x,y,w,h box to start a tracker from a rotated region: centred on the polygon's
    bounding box and shrunk to the polygon's area, so a 45-degree box does not start with its
    corners' background (the SiamFC/SiamMask convention on VOT)."""
    lo, hi = polygon.min(axis=0), polygon.max(axis=0)
    w, h = hi - lo
    scale = np.sqrt(polygon_area(polygon) / (w * h)) if w * h > 0 else 1.0
    cx, cy = (lo + hi) / 2
    return (float(cx - w * scale / 2), float(cy - h * scale / 2), float(w * scale), float(h * scale))


def _signed_area(points: np.ndarray) -> float:
    x, y = points[:, 0], points[:, 1]
    return float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2


def _clip_half_plane(points: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Keep the side of the directed line start->end that a counter-clockwise polygon lies on."""
    direction = end - start
    side = direction[0] * (points[:, 1] - start[1]) - direction[1] * (points[:, 0] - start[0])
    inside = side >= 0
    out = []
    for i in range(len(points)):
        j = (i + 1) % len(points)
        if inside[i]:
            out.append(points[i])
        if inside[i] != inside[j]:
            t = side[i] / (side[i] - side[j])
            out.append(points[i] + t * (points[j] - points[i]))
    return np.array(out, np.float64).reshape(-1, 2)
