"""Ultralytics YOLO segmentation: ROOT/images/<split>/NAME.* with ROOT/labels/<split>/NAME.txt
(one object per line: class, then polygon x y pairs normalised to 0..1). As in Ultralytics, the
images lead: an image without a label file is background (no crops) and a label file without an
image is never read. Each image is a one-frame video named after it; object id = line number."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ...errors import UserError
from ...io.sources import IMAGE_SUFFIXES
from .files import image_size, require_dir
from .records import FrameAnnotation, ObjectAnnotation, mask_object, polygon_mask

LAYOUT = "YOLO-seg: ROOT/images/<split>/*.jpg and ROOT/labels/<split>/*.txt"


def read_yolo_seg(root: Path) -> Iterator[FrameAnnotation]:
    images = require_dir(root / "images", LAYOUT)
    labels = require_dir(root / "labels", LAYOUT)
    for image in sorted(p for p in images.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        path = (labels / image.relative_to(images)).with_suffix(".txt")
        lines = [(n, line) for n, line in enumerate(path.read_text().splitlines(), 1)
                 if line.strip()] if path.is_file() else []
        if lines:
            width, height = image_size(image)
            objects = tuple(_object(path, n, line, width, height) for n, line in lines)
            yield FrameAnnotation(image.stem, 0, image, objects, path)


def _object(path: Path, number: int, line: str, width: int, height: int) -> ObjectAnnotation:
    try:
        values = [float(v) for v in line.split()]
    except ValueError:
        values = []
    if len(values) < 7 or len(values) % 2 == 0:
        raise UserError(f"{path}: line {number}: expected a class then at least 3 x y pairs, got '{line.strip()[:60]}'")
    points = np.array(values[1:]).reshape(-1, 2) * (width, height)
    return mask_object(number, polygon_mask([points], width, height))
