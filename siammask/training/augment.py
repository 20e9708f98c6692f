"""Crop-level augmentation for training pairs: shift, scale, blur, colour, grey, flip.

All geometry is one affine map out = s * (in - centre) + (out_size - 1) / 2, applied identically
to image, mask and box so the three always agree.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    shift: float          # max centre shift in crop pixels (uniform in [-shift, shift])
    scale: float          # max relative scale change (uniform in [1-scale, 1+scale])
    blur: float = 0.0     # probability of a Gaussian blur
    color: float = 0.0    # max relative per-channel gain change
    gray: float = 0.0     # probability of converting to grey
    flip: float = 0.0     # probability of a horizontal flip (decided per pair, not per crop)


def affine(center_xy: tuple[float, float], scale: float, out_size: int) -> np.ndarray:
    """2x3 matrix mapping crop pixels to output pixels around `center_xy`."""
    c = (out_size - 1) / 2
    return np.array([[scale, 0, c - scale * center_xy[0]], [0, scale, c - scale * center_xy[1]]], np.float64)


def warp_box(box_xywh: np.ndarray, m: np.ndarray) -> np.ndarray:
    x, y, w, h = box_xywh
    s = m[0, 0]
    return np.array([s * x + m[0, 2], s * y + m[1, 2], s * w, s * h], np.float64)


def flip_box(box_xywh: np.ndarray, size: int) -> np.ndarray:
    x, y, w, h = box_xywh
    return np.array([size - x - w, y, w, h], np.float64)


def augmented_crop(image: np.ndarray, mask: np.ndarray | None, box_xywh: np.ndarray, out_size: int,
                   cfg: AugmentConfig, flip: bool, rng: np.random.Generator):
    """Cut an augmented out_size crop around the middle of a pre-cropped image.

    Returns (image uint8 HxWx3, mask uint8 HxW 0/1 or None, box xywh in the output)."""
    centre = (image.shape[1] - 1) / 2 + rng.uniform(-cfg.shift, cfg.shift), \
             (image.shape[0] - 1) / 2 + rng.uniform(-cfg.shift, cfg.shift)
    m = affine(centre, 1 + rng.uniform(-cfg.scale, cfg.scale), out_size)
    mean = tuple(float(v) for v in image.reshape(-1, 3).mean(axis=0))
    out = cv2.warpAffine(image, m, (out_size, out_size), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=mean)
    out_mask = None
    if mask is not None:
        out_mask = (cv2.warpAffine(mask.astype(np.float32), m, (out_size, out_size), flags=cv2.INTER_LINEAR)
                    > 0.5).astype(np.uint8)
    box = warp_box(np.asarray(box_xywh, np.float64), m)
    if flip:
        out = np.ascontiguousarray(out[:, ::-1])
        out_mask = None if out_mask is None else np.ascontiguousarray(out_mask[:, ::-1])
        box = flip_box(box, out_size)
    return _photometric(out, cfg, rng), out_mask, box


def _photometric(image: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    if cfg.color > 0:
        gains = 1 + rng.uniform(-cfg.color, cfg.color, 3)
        image = np.clip(image.astype(np.float32) * gains, 0, 255).astype(np.uint8)
    if cfg.gray > 0 and rng.random() < cfg.gray:
        image = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    if cfg.blur > 0 and rng.random() < cfg.blur:
        k = int(rng.choice([3, 5]))
        image = cv2.GaussianBlur(image, (k, k), 0)
    return image
