"""ImageNet VID and DET: one PASCAL-style XML per image with <object><bndbox> boxes (no masks).
Boxes are taken as the original SiamMask crops them: x = xmin, w = xmax - xmin."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

from ...errors import UserError
from ..layouts.images import find_image
from .files import require_dir
from .records import Box, FrameAnnotation, ObjectAnnotation

VID_LAYOUT = "ImageNet VID: ROOT/Annotations/VID/<split>/.../SNIPPET/*.xml and ROOT/Data/VID/<same path>/*.JPEG"
DET_LAYOUT = "ImageNet DET: ROOT/Annotations/DET/<split>/.../*.xml and ROOT/Data/DET/<same path>.JPEG"


def read_vid(root: Path) -> Iterator[FrameAnnotation]:
    """Video = snippet folder name, frame = XML file number, object id = <trackid>."""
    annotations = require_dir(root / "Annotations" / "VID", VID_LAYOUT)
    for xml in sorted(annotations.rglob("*.xml")):
        if not xml.stem.isdigit():
            raise UserError(f"{xml}: expected a frame-numbered name such as 000000.xml")
        objects = tuple(ObjectAnnotation(_int(xml, i, obj, "trackid"), _box(xml, i, obj))
                        for i, obj in enumerate(_objects(xml)))
        image = _image(root / "Data" / "VID", xml.relative_to(annotations), xml)
        yield FrameAnnotation(xml.parent.name, int(xml.stem), image, objects, xml)


def read_det(root: Path) -> Iterator[FrameAnnotation]:
    """Each image is a one-frame video named after the image; object ids count from 1."""
    annotations = require_dir(root / "Annotations" / "DET", DET_LAYOUT)
    for xml in sorted(annotations.rglob("*.xml")):
        objects = tuple(ObjectAnnotation(i + 1, _box(xml, i, obj)) for i, obj in enumerate(_objects(xml)))
        image = _image(root / "Data" / "DET", xml.relative_to(annotations), xml)
        yield FrameAnnotation(xml.stem, 0, image, objects, xml)


def _objects(xml: Path) -> list[ET.Element]:
    try:
        return ET.parse(xml).getroot().findall("object")
    except ET.ParseError as exc:
        line, column = exc.position
        raise UserError(f"{xml}: malformed XML at line {line}, column {column}") from None


def _box(xml: Path, index: int, obj: ET.Element) -> Box:
    xmin, ymin, xmax, ymax = (_number(xml, index, obj, f"bndbox/{k}") for k in ("xmin", "ymin", "xmax", "ymax"))
    return xmin, ymin, xmax - xmin, ymax - ymin


def _number(xml: Path, index: int, obj: ET.Element, field: str) -> float:
    try:
        return float(obj.findtext(field) or "")
    except ValueError:
        raise UserError(f"{xml}: object {index + 1} has no numeric <{field}>") from None


def _int(xml: Path, index: int, obj: ET.Element, field: str) -> int:
    value = _number(xml, index, obj, field)
    if not value.is_integer():
        raise UserError(f"{xml}: object {index + 1}: <{field}> must be an integer")
    return int(value)


def _image(data: Path, relative_xml: Path, xml: Path) -> Path:
    image = find_image(data / relative_xml.parent, relative_xml.stem)
    if image is None:
        raise UserError(f"{xml}: no image {relative_xml.with_suffix('.JPEG')} under {data}")
    return image
