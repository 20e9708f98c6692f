"""Synthetic disappearances: make the target of a tracking sequence absent for a span of frames,
in several ways, so that presence estimates, re-detection and the long-term evaluation can be
trained and tested on known absences (a grey block is only one way a target goes missing, and a
presence estimate that learns only that one is worthless).

Modes (the target is absent on every frame of the span; its box row becomes NaN there):
- `grey`: the target's region filled with mid grey (GREY).
- `noise`: the region filled with fresh uniform noise every frame.
- `patch`: the region covered by background from elsewhere in the same frame (one offset for the
  whole span, never overlapping the region), so the scene looks as if the target had gone.
- `occluder`: the region covered by the same region of another scene's frames (something real
  passing in front); needs `other`.
- `cut`: the whole frame replaced by another scene's frames (an editing cut), then back; needs `other`.
- `exit`: a virtual camera: every output frame is a crop (the largest of VIEWS that can leave the
  target out) of the original; outside the
  span the crop follows the target, it pans over RAMP frames on each side and during the span it
  looks at a part of the frame that holds no part of the target, so the target leaves the picture
  and comes back. Boxes are shifted into the crop and clipped to it (partly out of view during the
  pan; OTB/UAV123 clip the same way). The output frames are smaller than the input.

The region covered is the target's box grown by PAD of its side plus PAD_PX pixels on each side,
rounded outwards to whole pixels and clipped to the frame, so no edge of the target is left showing.
Frames outside the span are returned as they are (the same arrays), except in `exit`.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import cv2
import numpy as np

from .names import MODES, NEEDS_OTHER

GREY = 128
PAD = 0.1      # of the box side, on each side
PAD_PX = 2.0   # pixels on each side, on top of PAD
VIEWS = (0.6, 0.5, 0.4)  # `exit`: side of the crop as a fraction of the frame's, the largest that works
RAMP = 4       # `exit`: frames of panning before and after the span
_PATCH_TRIES = 500
_PATCH_CHOICES = 64
RING = 6       # `patch`: pixels around the region whose colour the cover should match

Rect = tuple[int, int, int, int]  # x0, y0, x1, y1: pixel columns x0..x1-1, rows y0..y1-1


class Occluded(NamedTuple):
    """The new frames (HxWx3 uint8) and (N, 4) boxes x,y,w,h, 0-based, NaN rows where absent."""

    frames: list[np.ndarray]
    boxes: np.ndarray


def occlude(frames: Sequence[np.ndarray], boxes: np.ndarray, start: int, length: int, mode: str,
            rng: np.random.Generator, other: Sequence[np.ndarray] | None = None) -> Occluded:
    """Make the target absent on frames start..start+length-1 (0-based) by `mode` (see the module
    docstring). `boxes` is (N, 4) x,y,w,h, 0-based, NaN rows where the target is already absent.
    The first frame must show the target and stay untouched (a tracker starts there), so the span
    starts at 1 or later. Raises ValueError for a span, mode or sequence it cannot apply to."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if len(frames) != len(boxes):
        raise ValueError(f"{len(frames)} frames but {len(boxes)} boxes")
    if not np.all(np.isfinite(boxes[0])):
        raise ValueError("the target must be visible in the first frame")
    if mode not in MODES:
        raise ValueError(f"unknown mode '{mode}'; one of {', '.join(MODES)}")
    if start < 1 or length < 1 or start + length > len(frames):
        raise ValueError(f"span of {length} frames from frame {start} does not fit frames 1..{len(frames) - 1} "
                         f"of a {len(frames)}-frame sequence (frame 0 must show the target)")
    if mode in NEEDS_OTHER and not other:
        raise ValueError(f"mode '{mode}' needs frames of another scene")
    if mode == "exit":
        return _exit(frames, boxes, start, length)
    span = range(start, start + length)
    out = list(frames)
    new_boxes = boxes.copy()
    new_boxes[span.start:span.stop] = np.nan
    height, width = frames[0].shape[:2]
    regions = {t: cover_region(boxes[t], (width, height)) for t in span if np.all(np.isfinite(boxes[t]))}
    first_other = int(rng.integers(len(other))) if mode in NEEDS_OTHER else 0
    offset = _patch_offset(frames, regions, (width, height), rng) if mode == "patch" else (0, 0)
    for k, t in enumerate(span):
        if mode == "cut":
            out[t] = other_frame(other, first_other + k, (width, height))
            continue
        if t not in regions:
            continue  # already absent: nothing to cover
        x0, y0, x1, y1 = regions[t]
        frame = frames[t].copy()
        if mode == "grey":
            frame[y0:y1, x0:x1] = GREY
        elif mode == "noise":
            frame[y0:y1, x0:x1] = rng.integers(0, 256, (y1 - y0, x1 - x0, 3), dtype=np.uint8)
        elif mode == "patch":
            dx, dy = offset
            frame[y0:y1, x0:x1] = frames[t][y0 + dy:y1 + dy, x0 + dx:x1 + dx]
        else:  # occluder
            frame[y0:y1, x0:x1] = other_frame(other, first_other + k, (width, height))[y0:y1, x0:x1]
        out[t] = frame
    return Occluded(out, new_boxes)


def cover_region(box: np.ndarray, size: tuple[int, int]) -> Rect:
    """The pixels that hide the target of `box` (x,y,w,h): the box grown by PAD and PAD_PX on each
    side, rounded outwards, clipped to the frame of `size` (width, height)."""
    x, y, w, h = (float(v) for v in box)
    mx, my = PAD * w + PAD_PX, PAD * h + PAD_PX
    width, height = size
    return (max(0, math.floor(x - mx)), max(0, math.floor(y - my)),
            min(width, math.ceil(x + w + mx)), min(height, math.ceil(y + h + my)))


def other_frame(other: Sequence[np.ndarray], index: int, size: tuple[int, int]) -> np.ndarray:
    """Frame `index` (cycling) of the other scene at `size` (width, height)."""
    frame = other[index % len(other)]
    if frame.shape[1::-1] == tuple(size):
        return frame.copy()
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


def _patch_offset(frames: Sequence[np.ndarray], regions: dict[int, Rect], size: tuple[int, int],
                  rng: np.random.Generator) -> tuple[int, int]:
    """One shift (dx, dy) that moves each frame's region to a place inside that frame clear of it,
    so the cover is background of the same frame and never a piece of the target; of up to
    _PATCH_CHOICES such shifts, the one whose pixels are closest in mean colour to the ring around
    the region, so the cover blends with its surroundings (shade on shade, grass on grass)."""
    if not regions:
        return 0, 0
    width, height = size
    first = min(regions)
    choices = []
    for _ in range(_PATCH_TRIES):
        dx, dy = int(rng.integers(-width + 1, width)), int(rng.integers(-height + 1, height))
        moved = [((x0 + dx, y0 + dy, x1 + dx, y1 + dy), (x0, y0, x1, y1)) for x0, y0, x1, y1 in regions.values()]
        if all(_inside(source, size) and not _overlap(source, region) for source, region in moved):
            choices.append((dx, dy))
            if len(choices) == _PATCH_CHOICES:
                break
    if not choices:
        raise ValueError("no background in the frame as large as the target away from it, for mode 'patch'; "
                         "use a shorter span or another mode")
    x0, y0, x1, y1 = regions[first]
    frame = frames[first].astype(np.float64)
    ring = frame[max(0, y0 - RING):y1 + RING, max(0, x0 - RING):x1 + RING]
    inner = frame[y0:y1, x0:x1]
    ring_pixels = max(1, ring.shape[0] * ring.shape[1] - inner.shape[0] * inner.shape[1])
    ring_mean = (ring.sum(axis=(0, 1)) - inner.sum(axis=(0, 1))) / ring_pixels

    def mismatch(shift: tuple[int, int]) -> float:
        dx, dy = shift
        return float(np.abs(frame[y0 + dy:y1 + dy, x0 + dx:x1 + dx].mean(axis=(0, 1)) - ring_mean).sum())
    return min(choices, key=mismatch)


def _inside(rect: Rect, size: tuple[int, int]) -> bool:
    return rect[0] >= 0 and rect[1] >= 0 and rect[2] <= size[0] and rect[3] <= size[1]


def _overlap(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


# --- exit: a virtual camera that pans away from the target and back ---------------------------------

def _exit(frames: Sequence[np.ndarray], boxes: np.ndarray, start: int, length: int) -> Occluded:
    height, width = frames[0].shape[:2]
    stop = start + length
    plan = _forward_fill(boxes)  # where the camera believes the target is while it is not annotated
    views = [(int(round(f * width)), int(round(f * height))) for f in VIEWS]
    sides = [_exit_side(plan[start:stop], (width, height), view) for view in views]
    choice = next((i for i, side in enumerate(sides) if side is not None), None)
    if choice is None:
        raise ValueError(f"no view of at least {views[-1][0]}x{views[-1][1]} of the {width}x{height} frame leaves "
                         "the target out on every frame of the span, for mode 'exit'; use a shorter span or "
                         "another mode")
    view, side = views[choice], sides[choice]
    corners = np.array([_follow(b, (width, height), view) for b in plan], np.float64)
    away = np.array([_away(b, side, (width, height), view) for b in plan], np.float64)
    edge = np.array([_edge(b, side, (width, height), view) for b in plan], np.float64)
    corners[start:stop] = away[start:stop]
    before = range(max(1, start - RAMP), start)
    after = range(stop, min(len(frames), stop + RAMP))
    for t in before:
        f = (t - before.start + 1) / (len(before) + 1)
        corners[t] += f * (edge[t] - corners[t])
    for t in after:
        f = (after.stop - t) / (len(after) + 1)
        corners[t] += f * (edge[t] - corners[t])
    corners = np.round(corners).astype(int)
    out, new_boxes = [], np.full_like(boxes, np.nan)
    for t, (frame, (cx, cy)) in enumerate(zip(frames, corners)):
        out.append(np.ascontiguousarray(frame[cy:cy + view[1], cx:cx + view[0]]))
        if not start <= t < stop:
            new_boxes[t] = _clip_box(boxes[t] - (cx, cy, 0, 0), view)
    return Occluded(out, new_boxes)


def _forward_fill(boxes: np.ndarray) -> np.ndarray:
    plan = boxes.copy()
    for t in range(1, len(plan)):
        if not np.all(np.isfinite(plan[t])):
            plan[t] = plan[t - 1]
    return plan


def _follow(box: np.ndarray, size: tuple[int, int], view: tuple[int, int]) -> tuple[float, float]:
    """The crop's corner that centres the target, kept inside the frame."""
    x, y, w, h = box
    return (float(np.clip(x + w / 2 - view[0] / 2, 0, size[0] - view[0])),
            float(np.clip(y + h / 2 - view[1] / 2, 0, size[1] - view[1])))


_SIDES = ("left", "right", "top", "bottom")  # where the crop goes; the target leaves by the other side


def _away(box: np.ndarray, side: str, size: tuple[int, int], view: tuple[int, int]) -> tuple[float, float]:
    """The crop pushed against the frame's `side` edge (the other axis following the target)."""
    fx, fy = _follow(box, size, view)
    return {"left": (0.0, fy), "right": (float(size[0] - view[0]), fy),
            "top": (fx, 0.0), "bottom": (fx, float(size[1] - view[1]))}[side]


def _edge(box: np.ndarray, side: str, size: tuple[int, int], view: tuple[int, int]) -> tuple[float, float]:
    """The crop placed so that the target's centre is on its border on the way to `side`: the
    target is still half in view, and the pan from `_follow` to here keeps it at least half in view."""
    x, y, w, h = box
    fx, fy = _follow(box, size, view)
    corner = {"left": (x + w / 2 - view[0], fy), "right": (x + w / 2, fy),
              "top": (fx, y + h / 2 - view[1]), "bottom": (fx, y + h / 2)}[side]
    return (float(np.clip(corner[0], 0, size[0] - view[0])), float(np.clip(corner[1], 0, size[1] - view[1])))


def _exit_side(span_boxes: np.ndarray, size: tuple[int, int], view: tuple[int, int]) -> str | None:
    """The side whose crop keeps the whole target out of view on every frame of the span with the
    widest gap; None when no side does."""
    def gap(box: np.ndarray, side: str) -> float:
        x, y, w, h = box
        return {"left": x - view[0], "right": size[0] - view[0] - (x + w),
                "top": y - view[1], "bottom": size[1] - view[1] - (y + h)}[side]
    gaps = {side: min(gap(b, side) for b in span_boxes) for side in _SIDES}
    side = max(_SIDES, key=lambda s: gaps[s])
    return side if gaps[side] >= 0 else None


def _clip_box(box: np.ndarray, view: tuple[int, int]) -> np.ndarray:
    """The part of x,y,w,h inside the view; NaN when nothing of it is."""
    if not np.all(np.isfinite(box)):
        return np.full(4, np.nan)
    x0, y0 = max(box[0], 0.0), max(box[1], 0.0)
    x1, y1 = min(box[0] + box[2], view[0]), min(box[1] + box[3], view[1])
    if x1 <= x0 or y1 <= y0:
        return np.full(4, np.nan)
    return np.array([x0, y0, x1 - x0, y1 - y0])
