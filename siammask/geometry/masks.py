"""Mask paste-back from the crop to the frame, and the rotated box (polygon) of a mask.

A pasted mask is kept as the part of the frame it reaches (`Pasted`): on a 1280x720 frame, filling,
thresholding and tracing a whole frame-sized map cost about 1 ms a target, for a mask that covers a
few per cent of it."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


def mask_window(crop_xy: tuple[float, float], crop_side: float, pos_yx: tuple[int, int],
                instance: int = 255, exemplar: int = 127, stride: int = 8,
                base_size: int = 8) -> tuple[float, float, float]:
    """(x, y, side) in frame pixels of the exemplar-sized window the mask at grid pos (y, x) covers."""
    s = crop_side / instance
    y, x = pos_yx
    return (crop_xy[0] + (x - base_size / 2) * stride * s,
            crop_xy[1] + (y - base_size / 2) * stride * s, s * exemplar)


def paste_matrix(window: tuple[float, float, float], mask_size: int,
                 frame_wh: tuple[int, int]) -> np.ndarray:
    """The original's 2x3 axis-aligned matrix, mapping mask pixels to frame pixels (a forward map,
    which OpenCV's warpAffine inverts before sampling)."""
    k = mask_size / window[2]
    back = (-window[0] * k, -window[1] * k, frame_wh[0] * k, frame_wh[1] * k)
    a = (frame_wh[0] - 1) / back[2]
    b = (frame_wh[1] - 1) / back[3]
    return np.array([[a, 0, -a * back[0]], [0, b, -b * back[1]]], np.float64)


_AB_SCALE = 1024  # OpenCV 4's fixed-point scale for affine coordinates (AB_BITS = 10)
_INTER_BITS = 5   # sub-pixel positions in 1/32 px


def _invert_axis_aligned(m: np.ndarray) -> tuple[float, float, float, float]:
    """(ax, cx, by, dy) of the inverse map, computed in the same order as OpenCV's invertAffineTransform."""
    a, b = float(m[0, 0]), float(m[1, 1])
    det = 1.0 / (a * b)
    ia, ib = b * det, a * det
    return ia, -ia * float(m[0, 2]), ib, -ib * float(m[1, 2])


@dataclass(frozen=True)
class Pasted:
    """Mask probabilities pasted into a frame: `values` covers the frame's columns x.. and rows y..
    it reaches; every other pixel of the frame is -1 (outside the mask window)."""

    x: int
    y: int
    values: np.ndarray  # (h, w) float32

    def frame(self, frame_wh: tuple[int, int]) -> np.ndarray:
        """The frame-sized float map."""
        out = np.full((frame_wh[1], frame_wh[0]), -1, np.float32)
        h, w = self.values.shape
        out[self.y:self.y + h, self.x:self.x + w] = self.values
        return out

    def above(self, threshold: float, frame_wh: tuple[int, int]) -> np.ndarray:
        """The frame-sized bool mask of probabilities above `threshold` (threshold >= -1)."""
        out = np.zeros((frame_wh[1], frame_wh[0]), bool)
        h, w = self.values.shape
        out[self.y:self.y + h, self.x:self.x + w] = self.values > threshold
        return out

    def covering(self, x0: int, y0: int, x1: int, y1: int) -> Pasted:
        """The same map holding at least frame columns x0..x1 and rows y0..y1 (-1 where new)."""
        h, w = self.values.shape
        if x0 >= self.x and y0 >= self.y and x1 <= self.x + w and y1 <= self.y + h:
            return self
        if not self.values.size:  # nothing pasted (a window off the frame): only the region
            return Pasted(x0, y0, np.full((y1 - y0, x1 - x0), -1, np.float32))
        nx0, ny0 = min(x0, self.x), min(y0, self.y)
        nx1, ny1 = max(x1, self.x + w), max(y1, self.y + h)
        values = np.full((ny1 - ny0, nx1 - nx0), -1, np.float32)
        values[self.y - ny0:self.y - ny0 + h, self.x - nx0:self.x - nx0 + w] = self.values
        return Pasted(nx0, ny0, values)


def paste_back(mask: np.ndarray, matrix: np.ndarray, frame_wh: tuple[int, int]) -> Pasted:
    """Bilinear warp of a (S,S) probability mask into the frame; outside the window is -1.

    OpenCV 4 (which the original ran on) samples warpAffine at 1/32 px in fixed point, OpenCV 5 in
    float: about 1000 mask pixels differ per frame. We build OpenCV 4's fixed-point sampling maps
    ourselves and hand them to cv2.remap, so masks are identical on either version. The matrix is
    axis-aligned, so the maps are separable and cheap to build."""
    if matrix[0, 1] != 0 or matrix[1, 0] != 0:
        raise ValueError("paste_back expects an axis-aligned (scale + shift) matrix")
    w, h = frame_wh
    ax, cx, by, dy = _invert_axis_aligned(matrix)
    half = _AB_SCALE >> (_INTER_BITS + 1)
    shift = 10 - _INTER_BITS
    xs = (np.rint(cx * _AB_SCALE).astype(np.int64) + half + np.rint(ax * np.arange(w) * _AB_SCALE).astype(np.int64)) >> shift
    ys = (np.rint((by * np.arange(h) + dy) * _AB_SCALE).astype(np.int64) + half) >> shift
    # Only pixels with a bilinear tap inside the mask need sampling; OpenCV writes the border
    # value itself for the others, so the result is the same.
    x_lo, x_hi = _tap_range(xs >> _INTER_BITS, mask.shape[1])
    y_lo, y_hi = _tap_range(ys >> _INTER_BITS, mask.shape[0])
    if x_lo >= x_hi or y_lo >= y_hi:
        return Pasted(0, 0, np.zeros((0, 0), np.float32))
    xs, ys = xs[x_lo:x_hi], ys[y_lo:y_hi]
    tab = 1 << _INTER_BITS
    coords = np.empty((len(ys), len(xs), 2), np.int16)
    coords[..., 0] = (xs >> _INTER_BITS)[None, :]
    coords[..., 1] = (ys >> _INTER_BITS)[:, None]
    frac = np.add.outer(((ys & (tab - 1)) * tab).astype(np.uint16), (xs & (tab - 1)).astype(np.uint16))
    return Pasted(x_lo, y_lo, cv2.remap(mask, coords, frac, cv2.INTER_LINEAR,
                                        borderMode=cv2.BORDER_CONSTANT, borderValue=-1))


def _tap_range(taps: np.ndarray, size: int) -> tuple[int, int]:
    """[lo, hi) of the (monotonic) integer source positions whose taps t, t+1 touch [0, size)."""
    return int(np.searchsorted(taps, -1, "left")), int(np.searchsorted(taps, size - 1, "right"))


def box_corners(cx: float, cy: float, w: float, h: float) -> np.ndarray:
    """(4,2) corners of an axis-aligned box given by centre and size: TL, TR, BR, BL."""
    x, y = cx - w / 2, cy - h / 2
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float64)


def guided_filter_available() -> bool:
    """Whether this OpenCV has its contrib modules (cv2.ximgproc), which guided_refine needs: the
    plain opencv-python build installs the same `cv2` without them."""
    return hasattr(cv2, "ximgproc")


def guided_refine(pasted: Pasted, frame: np.ndarray, window: tuple[float, float, float], mask_size: int,
                  radius: float, eps: float) -> Pasted:
    """Pasted-back mask probabilities (changed in place where they already cover it) with the mask window, and
    `radius` mask pixels around it, passed through a guided filter on the frame's colours (He et al.,
    ECCV 2010), so the boundary moves onto the image's edges. One mask pixel covers window/mask_size
    frame pixels (4-5 for a large DAVIS object), coarser than the object's outline. The region is
    filtered shrunk by a whole factor to between one and two times the mask's resolution: finer
    edges barely change the boundary measure (DAVIS-train J&F 0.635 at 1x, 0.637 at 2x), OpenCV's
    colour-guided filter costs ~5 ms at 290x290 against 0.6 ms at 145x145, and a whole factor keeps
    OpenCV's area resampling on its fast path (3 ms -> 0.8 ms for a 900x900 region of a 1080p frame).
    eps is the guide's noise level as a fraction of the 0-255 range; the region comes back in [0, 1]."""
    h, w = frame.shape[:2]
    x, y, side = window
    pad = radius * side / mask_size  # frame pixels
    factor = max(1, int(side // mask_size))
    x0, y0 = max(0, int(np.floor(x - pad))), max(0, int(np.floor(y - pad)))
    x1, y1 = min(w, int(np.ceil(x + side + pad))), min(h, int(np.ceil(y + side + pad)))
    # whole multiples of the factor; the < factor pixels cut off at the far sides stay unfiltered
    x1, y1 = x0 + (x1 - x0) // factor * factor, y0 + (y1 - y0) // factor * factor
    if x1 <= x0 or y1 <= y0:
        return pasted
    pasted = pasted.covering(x0, y0, x1, y1)
    prob = pasted.values[y0 - pasted.y:y1 - pasted.y, x0 - pasted.x:x1 - pasted.x]  # a view
    guide = frame[y0:y1, x0:x1]
    region = np.maximum(prob, 0)  # outside the window paste_back wrote -1
    if factor > 1:
        guide = cv2.resize(guide, None, fx=1 / factor, fy=1 / factor, interpolation=cv2.INTER_AREA)
        region = cv2.resize(region, None, fx=1 / factor, fy=1 / factor, interpolation=cv2.INTER_AREA)
    filtered = cv2.ximgproc.guidedFilter(guide, region, max(1, round(pad / factor)), (eps * 255) ** 2)
    if factor > 1:
        filtered = cv2.resize(filtered, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    prob[...] = np.clip(filtered, 0, 1)
    return pasted


def mask_polygon(mask: np.ndarray, threshold: float, min_area: float = 100.0,
                 origin: tuple[int, int] = (0, 0)) -> np.ndarray | None:
    """(4,2) corners of the min-area rectangle around the largest external contour of mask > threshold;
    None when there is no contour larger than min_area. `origin`: the frame pixel of mask[0, 0] (a
    Pasted's x, y); OpenCV traces as if the pixels round the array were 0, as they are there."""
    binary = (mask > threshold).astype(np.uint8)
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE, offset=origin)
    if not contours:
        return None
    areas = [cv2.contourArea(c) for c in contours]
    best = int(np.argmax(areas))
    if areas[best] <= min_area:
        return None
    return cv2.boxPoints(cv2.minAreaRect(contours[best].reshape(-1, 2))).astype(np.float64)
