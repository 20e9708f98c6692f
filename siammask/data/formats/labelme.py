"""labelme JSON files anywhere under ROOT (other JSON files are passed over). Polygon and
rectangle shapes become filled masks; shapes sharing a label and group_id are one object, an
ungrouped shape is an object of its own. Labels starting with __ignore__ (labelme's
convention) are kept out of training. The image is imagePath beside the JSON, else the
embedded imageData. Each image is a one-frame video named after it."""
from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ...errors import UserError
from .files import image_size, load_json, require_dir
from .records import FrameAnnotation, ObjectAnnotation, mask_object, polygon_mask

LAYOUT = "labelme: ROOT/**/*.json with their images"


def read_labelme(root: Path) -> Iterator[FrameAnnotation]:
    require_dir(root, LAYOUT)
    for path in sorted(root.rglob("*.json")):
        data = load_json(path)
        if isinstance(data, dict) and isinstance(data.get("shapes"), list):
            yield _frame(path, data)


def _frame(path: Path, data: dict) -> FrameAnnotation:
    image = _image(path, data)
    width, height = ((int(data["imageWidth"]), int(data["imageHeight"]))
                     if data.get("imageWidth") and data.get("imageHeight") else image_size(image))
    groups: dict[tuple[str, str], list[tuple[int, dict]]] = {}
    for i, shape in enumerate(data["shapes"]):
        if not isinstance(shape, dict):
            raise UserError(f"{path}: shapes[{i}] is not an object")
        label, group = str(shape.get("label", "")), shape.get("group_id")
        groups.setdefault((label, f"group {group}" if group is not None else f"shape {i}"), []).append((i, shape))
    objects = tuple(_object(path, n, label, shapes, width, height)
                    for n, ((label, _), shapes) in enumerate(groups.items(), 1))
    name = data.get("imagePath") or path.name
    return FrameAnnotation(Path(str(name).replace("\\", "/")).stem, 0, image, objects, path)


def _image(path: Path, data: dict) -> Path | bytes:
    if data.get("imagePath") and (file := path.parent / str(data["imagePath"]).replace("\\", "/")).is_file():
        return file
    if data.get("imageData"):
        try:
            return base64.b64decode(data["imageData"], validate=True)
        except (binascii.Error, TypeError):
            raise UserError(f"{path}: 'imageData' is not valid base64") from None
    raise UserError(f"{path}: image '{data.get('imagePath')}' not found and no 'imageData' embedded")


def _object(path: Path, object_id: int, label: str, shapes: list[tuple[int, dict]],
            width: int, height: int) -> ObjectAnnotation:
    if label.startswith("__ignore__"):
        return ObjectAnnotation(object_id, None, ignore="__ignore__ label")
    polygons = [p for i, shape in shapes if (p := _polygon(path, i, shape)) is not None]
    if not polygons:
        return ObjectAnnotation(object_id, None, ignore="labelme shape without area")
    return mask_object(object_id, polygon_mask(polygons, width, height))


def _polygon(path: Path, index: int, shape: dict) -> np.ndarray | None:
    """The shape's outline in frame pixels; None for shapes that enclose no area (lines, points...)."""
    kind = shape.get("shape_type") or "polygon"
    try:
        points = np.asarray(shape["points"], np.float64).reshape(-1, 2)
    except (KeyError, TypeError, ValueError):
        raise UserError(f"{path}: shapes[{index}] needs 'points': [[x, y], ...]") from None
    if kind == "polygon" and len(points) >= 3:
        return points
    if kind == "rectangle" and len(points) == 2:
        (x0, y0), (x1, y1) = points
        return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    return None
