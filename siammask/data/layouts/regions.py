"""Ground-truth text files with one region per line (VOT, OTB, UAV123)."""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from ...errors import UserError

Box = tuple[float, float, float, float]  # x, y, w, h in 0-based frame pixels
_SEPARATORS = re.compile(r"[,\s]+")


def read_rows(path: Path, what: str) -> list[list[float]]:
    """Numbers per line, separated by commas, tabs or spaces; blank lines only allowed at the end."""
    if not path.is_file():
        raise UserError(f"{what} '{path}' not found; every sequence needs its ground-truth file")
    lines = path.read_text(errors="replace").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    rows = []
    for number, line in enumerate(lines, start=1):
        try:
            rows.append([float(v) for v in _SEPARATORS.split(line.strip())])
        except ValueError:
            raise UserError(f"{path}:{number}: cannot read '{line.strip()[:60]}' as numbers") from None
    if not rows:
        raise UserError(f"{what} '{path}' is empty")
    return rows


def read_vot_regions(path: Path) -> list[np.ndarray]:
    """One (4, 2) array of 0-based corners per line: 4 values are an axis-aligned x,y,w,h box,
    8 values a rotated polygon. NaN rows (VOT-LT: target absent) and all-zero rows (target not
    visible) are kept as they are."""
    regions = []
    for number, row in enumerate(read_rows(path, "ground truth"), start=1):
        if len(row) not in (4, 8):
            raise UserError(f"{path}:{number}: expected 4 values (x,y,w,h) or 8 (polygon corners), got {len(row)}")
        _finite_or_absent(path, number, row)
        if len(row) == 4:
            x, y, w, h = row
            regions.append(np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float64))
        else:
            regions.append(np.array(row, np.float64).reshape(4, 2))
    return regions


def read_otb_boxes(path: Path) -> np.ndarray:
    """(N, 4) 0-based x,y,w,h from OTB's 1-based rows; NaN rows (UAV123, long-term clips: target
    absent) stay NaN."""
    rows = read_rows(path, "ground truth")
    for number, row in enumerate(rows, start=1):
        if len(row) != 4:
            raise UserError(f"{path}:{number}: expected 4 numbers x,y,w,h, got {len(row)}")
        _finite_or_absent(path, number, row)
    boxes = np.array(rows, np.float64)
    boxes[:, :2] -= 1.0
    return boxes


def _finite_or_absent(path: Path, number: int, row: list[float]) -> None:
    """A row is all numbers, or all NaN (the target is absent): a half-NaN or infinite row is a
    broken file, and read as either it would score or train on a box nobody drew."""
    finite = [math.isfinite(v) for v in row]
    if not all(finite) and not all(math.isnan(v) for v in row):
        shown = ",".join(f"{v:g}" for v in row)
        raise UserError(f"{path}:{number}: '{shown}' mixes numbers with NaN or infinity; a row is all numbers, "
                        f"or {','.join(['NaN'] * len(row))} where the target is absent")


def write_otb_boxes(path: Path, boxes: np.ndarray) -> None:
    """Write (N, 4) 0-based x,y,w,h as OTB's 1-based rows, NaN rows as NaN,NaN,NaN,NaN: what
    read_otb_boxes reads back."""
    rows = (",".join(["NaN"] * 4) if not np.all(np.isfinite(b)) else
            ",".join(f"{v:.8g}" for v in (b[0] + 1.0, b[1] + 1.0, b[2], b[3])) for b in boxes)
    path.write_text("".join(f"{row}\n" for row in rows))


def region_box(points: np.ndarray) -> Box | None:
    """Axis-aligned box of a region's corners; None when the target is not visible (NaN, all zero)."""
    if not np.all(np.isfinite(points)) or not np.any(points):
        return None
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    return float(x0), float(y0), float(x1 - x0), float(y1 - y0)


def check_count(name: str, frames: int, annotated: int, what: str) -> None:
    """A shifted or truncated ground truth would pair every frame with the wrong target."""
    if frames != annotated:
        raise UserError(f"sequence '{name}' has {frames} frames but {annotated} {what}; "
                        "the ground truth must have one entry per frame")


def visible_box(row: np.ndarray) -> Box | None:
    """An x,y,w,h row as a box, or None when the target is not visible (NaN, zero width or height)."""
    if not np.all(np.isfinite(row)) or row[2] <= 0 or row[3] <= 0:
        return None
    return float(row[0]), float(row[1]), float(row[2]), float(row[3])
