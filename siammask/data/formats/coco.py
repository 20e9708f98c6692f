"""COCO instance annotations: ROOT/annotations/instances*.json (else any *.json there), images in
ROOT/images/, ROOT/images/<split>/ or ROOT/<split>/ (split from instances_<split>.json or the
image's coco_split). Polygons and RLE become masks via pycocotools; crowd regions are marked
ignored, not decoded."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from ...errors import UserError
from .files import load_json, require_dir
from .records import FrameAnnotation, ObjectAnnotation

LAYOUT = "ROOT/annotations/instances*.json with images in ROOT/images/ or ROOT/<split>/"


def read_coco(root: Path) -> Iterator[FrameAnnotation]:
    """One frame per annotated image; object ids are the COCO annotation ids."""
    folder = require_dir(root / "annotations", LAYOUT)
    files = sorted(folder.glob("instances*.json")) or sorted(folder.glob("*.json"))
    for path in files:
        yield from _read_file(root, path)


def _read_file(root: Path, path: Path) -> Iterator[FrameAnnotation]:
    data = load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise UserError(f"{path}: not a COCO instances file (no 'images' list)")
    images = {}
    for i, image in enumerate(data["images"]):
        try:
            images[image["id"]] = image
        except (KeyError, TypeError):
            raise UserError(f"{path}: images[{i}] has no 'id'") from None
    by_image: dict[Any, list[dict]] = defaultdict(list)
    for i, ann in enumerate(data.get("annotations") or []):
        if not isinstance(ann, dict) or ann.get("image_id") not in images:
            raise UserError(f"{path}: annotations[{i}] has no 'image_id' that is in 'images'")
        by_image[ann["image_id"]].append(ann)
    default_split = path.stem.removeprefix("instances_") if path.stem.startswith("instances_") else ""
    for image_id, anns in by_image.items():
        image = images[image_id]
        name = str(image.get("file_name", ""))
        yield FrameAnnotation(video=Path(name).stem, frame=0,
                              image=_image_path(root, path, name, str(image.get("coco_split", default_split))),
                              objects=tuple(_object(path, image, ann) for ann in anns), source=path)


def _image_path(root: Path, source: Path, name: str, split: str) -> Path:
    candidates = [root / "images" / name, root / "images" / split / name, root / split / name, root / name]
    for candidate in candidates:
        if name and candidate.is_file():
            return candidate
    raise UserError(f"{source}: image '{name}' is in none of {root}/images/, {root}/images/{split}/, {root}/{split}/")


def _object(path: Path, image: dict, ann: dict) -> ObjectAnnotation:
    try:
        object_id = int(ann["id"])
        x, y, w, h = (float(v) for v in ann["bbox"])
    except (KeyError, TypeError, ValueError):
        raise UserError(f"{path}: annotation {ann.get('id', '?')} needs an integer 'id' "
                        "and 'bbox': [x, y, w, h]") from None
    if ann.get("iscrowd"):
        return ObjectAnnotation(object_id, (x, y, w, h), ignore="crowd")
    return ObjectAnnotation(object_id, (x, y, w, h), _mask(path, image, ann))


def _mask(path: Path, image: dict, ann: dict) -> np.ndarray | None:
    """The annotation's mask at the image's size; None for box-only annotations."""
    segmentation = ann.get("segmentation")
    if isinstance(segmentation, list):
        segmentation = [p for p in segmentation if isinstance(p, list) and len(p) >= 6]
    if not segmentation:
        return None
    try:
        height, width = int(image["height"]), int(image["width"])
        if isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), str):  # compressed RLE
            rle = {"size": segmentation["size"], "counts": segmentation["counts"].encode("ascii")}
        else:  # polygons or uncompressed RLE
            rles = mask_utils.frPyObjects(segmentation, height, width)
            rle = mask_utils.merge(rles) if isinstance(rles, list) else rles
        return mask_utils.decode(rle).astype(bool)
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path}: annotation {ann.get('id')} has a malformed 'segmentation' ({exc})") from None
