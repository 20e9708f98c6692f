"""Sequences with one box per line of a text file: VOT (SEQ/groundtruth.txt, 0-based, x,y,w,h
or an 8-value rotated polygon reduced to its axis-aligned box) and OTB / UAV123
(SEQ/groundtruth_rect.txt, 1-based x,y,w,h). Line i is the i-th image in name order; NaN or
all-zero rows mean the target is not visible."""
from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path

from ...errors import UserError
from .files import image_files, real_dir, require_dir
from .records import Box, FrameAnnotation, ObjectAnnotation

VOT_LAYOUT = "VOT: ROOT/list.txt, ROOT/SEQ/groundtruth.txt and ROOT/SEQ/*.jpg (or ROOT/SEQ/color/*.jpg)"
OTB_LAYOUT = "OTB: ROOT/SEQ/img/*.jpg and ROOT/SEQ/groundtruth_rect.txt"
_OTB_FILE = re.compile(r"groundtruth_rect(?:\.(\d+))?\.txt")  # .N. = object N (Jogging, Skating2)


def read_vot(root: Path) -> Iterator[FrameAnnotation]:
    """Sequences from ROOT/list.txt, else every subfolder with a groundtruth.txt."""
    require_dir(root, VOT_LAYOUT)
    listing = root / "list.txt"
    names = ([n.strip() for n in listing.read_text().splitlines() if n.strip()] if listing.is_file()
             else sorted(p.name for p in root.iterdir() if (p / "groundtruth.txt").is_file()))
    for name in names:
        folder = require_dir(root / name, VOT_LAYOUT)
        frames = folder / "color" if (folder / "color").is_dir() else folder
        yield from _sequence(name, image_files(frames), {1: folder / "groundtruth.txt"}, one_based=False)


def read_otb(root: Path) -> Iterator[FrameAnnotation]:
    """ROOT is one sequence or a folder of them (OTB, UAV123_10fps); groundtruth_rect.N.txt is object N."""
    require_dir(root, OTB_LAYOUT)
    folders = [root] if _otb_files(root) else sorted(p for p in map(real_dir, root.iterdir())
                                                      if p.is_dir() and _otb_files(p))
    for folder in folders:
        yield from _sequence(folder.name, image_files(require_dir(folder / "img", OTB_LAYOUT)),
                             _otb_files(folder), one_based=True)


def _otb_files(folder: Path) -> dict[int, Path]:
    found = {}
    for path in folder.glob("groundtruth_rect*.txt"):
        if match := _OTB_FILE.fullmatch(path.name):
            found[int(match.group(1) or 1)] = path
    return found


def _sequence(video: str, images: list[Path], files: dict[int, Path], one_based: bool) -> Iterator[FrameAnnotation]:
    boxes = {object_id: read_boxes(path, one_based) for object_id, path in sorted(files.items())}
    for object_id, rows in boxes.items():
        if len(rows) > len(images):
            raise UserError(f"{files[object_id]}: {len(rows)} boxes but only {len(images)} images for {video}")
    source = files[min(files)]
    for i in range(max(len(rows) for rows in boxes.values())):
        objects = tuple(ObjectAnnotation(o, rows[i]) for o, rows in boxes.items() if i < len(rows))
        yield FrameAnnotation(video, i, images[i], objects, source)


def read_boxes(path: Path, one_based: bool) -> list[Box | None]:
    """One box per line (None where the target is not visible); a bad line is named."""
    if not path.is_file():
        raise UserError(f"{path} is missing")
    lines = path.read_text().rstrip().splitlines()
    return [_parse_line(path, n, line, one_based) for n, line in enumerate(lines, 1)]


def _parse_line(path: Path, number: int, line: str, one_based: bool) -> Box | None:
    try:
        values = [float(v) for v in re.split(r"[,\s]+", line.strip())]
    except ValueError:
        values = []
    if len(values) not in (4, 8):
        raise UserError(f"{path}: line {number}: expected x,y,w,h or an 8-value polygon, got '{line.strip()[:60]}'")
    if any(math.isnan(v) for v in values) or not any(values):
        return None
    if len(values) == 8:
        xs, ys = values[0::2], values[1::2]
        x, y, w, h = min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)
    else:
        x, y, w, h = values
    shift = 1.0 if one_based else 0.0
    return x - shift, y - shift, w, h
