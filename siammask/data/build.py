"""Pre-cropped training sets, as the original SiamMask prepares its data: every object of every
annotated frame is cut out once, centred and at a fixed scale, so training reads small images
instead of whole frames.

The layout is a contract with the training code (siammask/training/pairs.py):
OUT/index.json and OUT/crops/<video>/<frame:05d>.<object>.jpg (+ .png mask, 0/255, when the
source has one); index.json lists tracks (one object through one video) with each frame's crop
paths (relative to OUT) and the box [x, y, w, h] in crop pixels.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

import cv2
import numpy as np

from ..errors import UserError
from ..geometry.crop import context_side
from .formats.records import Box, FrameAnnotation, ObjectAnnotation

FORMAT_VERSION = 1
EXEMPLAR_SIZE = 127
CONTEXT = 0.5
MIN_SIDE = 4.0  # boxes narrower or shorter than this (frame pixels) are too small to learn from
JPEG_QUALITY = 90


@dataclass(frozen=True)
class Crop:
    image: np.ndarray  # SxSx3 uint8 BGR
    mask: np.ndarray | None  # SxS bool
    box: Box  # x, y, w, h in crop pixels


@dataclass
class Summary:
    """What a build did, for the command's report."""

    out: Path
    frames: int = 0
    tracks: int = 0
    crops: int = 0
    with_mask: int = 0
    skipped: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def report(self) -> str:
        lines = [f"built {self.tracks} tracks, {self.crops} crops ({self.with_mask} with masks, "
                 f"{self.crops - self.with_mask} without) from {self.frames} frames "
                 f"in {self.seconds:.1f} s -> {self.out}"]
        if self.skipped:
            reasons = ", ".join(f"{n} {reason}" for reason, n in self.skipped.most_common())
            lines.append(f"skipped {sum(self.skipped.values())} objects: {reasons}")
        return "\n".join(lines)


def crop_matrix(box: Box, crop_size: int) -> np.ndarray:
    """2x3 frame-to-crop affine for cv2.warpAffine, which works on pixel centres: scale
    k = 127/s_z about the box centre, which lands on the crop's middle pixel ((S-1)/2, (S-1)/2).
    The crop thus spans s_x = s_z * S / 127 frame pixels, the original's search region.

    Boxes follow the project's convention (pixel i covers [i, i+1], so a box's centre is
    x + w/2 and that pixel's centre is at i + 0.5), hence the half-pixel shifts."""
    x, y, w, h = box
    k = EXEMPLAR_SIZE / float(context_side(np.array([w, h]), CONTEXT))
    middle = (crop_size - 1) / 2
    return np.array([[k, 0.0, middle - k * (x + w / 2 - 0.5)],
                     [0.0, k, middle - k * (y + h / 2 - 0.5)]])


def map_box(matrix: np.ndarray, box: Box) -> Box:
    """A box through a crop_matrix, in the same convention, so that box, image and mask agree
    exactly: its centre lands at S/2, the middle of the crop's pixel (S-1)/2."""
    x, y, w, h = box
    k = matrix[0, 0]
    return (k * (x - 0.5) + matrix[0, 2] + 0.5, k * (y - 0.5) + matrix[1, 2] + 0.5, k * w, k * h)


def crop_object(image: np.ndarray, box: Box, mask: np.ndarray | None, crop_size: int,
                fill: tuple[float, float, float]) -> Crop:
    """Image, mask and box through one matrix, so the three agree exactly; outside the frame the
    image is `fill` (the frame's mean colour) and the mask is background."""
    matrix = crop_matrix(box, crop_size)
    size = (crop_size, crop_size)
    image_crop = cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=fill)
    mask_crop = None
    if mask is not None:
        mask_crop = cv2.warpAffine(mask.astype(np.float32), matrix, size, flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=0.0) > 0.5
    return Crop(image_crop, mask_crop, map_box(matrix, box))


def skip_reason(obj: ObjectAnnotation) -> str | None:
    """Why an object gets no crop, or None when it gets one."""
    if obj.ignore:
        return obj.ignore
    if obj.box is None or not all(math.isfinite(v) for v in obj.box):
        return "absent from frame"
    if obj.box[2] < MIN_SIDE or obj.box[3] < MIN_SIDE:
        return f"tiny (w or h < {MIN_SIDE:g} px)"
    return None


def build_dataset(frames: Iterable[FrameAnnotation], out: Path, *, crop_size: int, source_format: str,
                  source_root: Path, overwrite: bool = False) -> Summary:
    """Crop every usable object of every frame into OUT and write OUT/index.json last, so a set
    without index.json is known to be incomplete. Nothing in OUT is touched until the source has
    yielded its first frame."""
    started = time.perf_counter()
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise UserError(f"no {source_format} annotations found under {source_root}")
    _prepare(out, overwrite)
    summary = Summary(out)
    tracks: dict[tuple[str, int], list[dict]] = {}
    written: set[tuple[str, int, int]] = set()
    for frame in chain([first], frames):
        summary.frames += 1
        usable = []
        for obj in frame.objects:
            reason = skip_reason(obj)
            if reason:
                summary.skipped[reason] += 1
            else:
                usable.append(obj)
        if not usable:
            continue
        image = read_image(frame)
        fill = tuple(float(c) for c in cv2.mean(image)[:3])
        for obj in usable:
            key = (frame.video, obj.object_id, frame.frame)
            if key in written:
                raise UserError(f"{frame.source}: object {obj.object_id} of '{frame.video}' frame {frame.frame} "
                                "appears twice (two images with the same name?)")
            written.add(key)
            tracks.setdefault(key[:2], []).append(_write_crop(out, frame, obj, image, fill, crop_size))
            summary.crops += 1
            summary.with_mask += obj.mask is not None
    _write_index(out, tracks, crop_size, source_format, source_root)
    summary.tracks = len(tracks)
    summary.seconds = time.perf_counter() - started
    return summary


def _prepare(out: Path, overwrite: bool) -> None:
    """An empty (or new) OUT; with overwrite, only a previous build's crops/ and index.json go."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise UserError(f"--out {out} is not empty; choose another folder or pass --overwrite")
        shutil.rmtree(out / "crops", ignore_errors=True)
        (out / "index.json").unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def read_image(frame: FrameAnnotation) -> np.ndarray:
    """The annotated frame's pixels (a file or embedded bytes); unreadable is a one-line error."""
    if isinstance(frame.image, bytes):
        image = cv2.imdecode(np.frombuffer(frame.image, np.uint8), cv2.IMREAD_COLOR)
    else:
        image = cv2.imread(str(frame.image), cv2.IMREAD_COLOR)
    if image is None:
        where = "embedded image" if isinstance(frame.image, bytes) else f"image {frame.image}"
        raise UserError(f"cannot read {where} (annotated in {frame.source})")
    return image


def _write_crop(out: Path, frame: FrameAnnotation, obj: ObjectAnnotation, image: np.ndarray,
                fill: tuple[float, float, float], crop_size: int) -> dict:
    """Write one object's crop (and mask) and return its index entry."""
    if obj.mask is not None and obj.mask.shape != image.shape[:2]:
        raise UserError(f"{frame.source}: mask of object {obj.object_id} is {obj.mask.shape[1]}x{obj.mask.shape[0]} "
                        f"but its image is {image.shape[1]}x{image.shape[0]}")
    crop = crop_object(image, obj.box, obj.mask, crop_size, fill)
    stem = f"crops/{frame.video}/{frame.frame:05d}.{obj.object_id}"
    (out / "crops" / frame.video).mkdir(parents=True, exist_ok=True)
    _imwrite(out / f"{stem}.jpg", crop.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if crop.mask is not None:
        _imwrite(out / f"{stem}.png", crop.mask.astype(np.uint8) * 255, [])
    return {"frame": frame.frame, "image": f"{stem}.jpg", "mask": f"{stem}.png" if crop.mask is not None else None,
            "box": [round(float(v), 3) for v in crop.box]}


def _imwrite(path: Path, image: np.ndarray, params: list[int]) -> None:
    if not cv2.imwrite(str(path), image, params):
        raise UserError(f"cannot write {path}")


def _write_index(out: Path, tracks: dict[tuple[str, int], list[dict]], crop_size: int,
                 source_format: str, source_root: Path) -> None:
    index = {
        "format_version": FORMAT_VERSION, "crop_size": crop_size, "exemplar_size": EXEMPLAR_SIZE,
        "context": CONTEXT, "source_format": source_format, "source_root": str(source_root.resolve()),
        "tracks": [{"video": video, "object": object_id, "frames": sorted(entries, key=lambda e: e["frame"])}
                   for (video, object_id), entries in sorted(tracks.items())],
    }
    partial = out / "index.json.partial"
    partial.write_text(json.dumps(index, indent=1))
    os.replace(partial, out / "index.json")
