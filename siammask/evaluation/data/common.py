"""What every loader returns, and the parsing helpers they share (text rows, frame lists, labels)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import UserError
from ...io.sources import IMAGE_SUFFIXES

_SEPARATORS = re.compile(r"[,\s]+")


@dataclass(frozen=True)
class BoxSequence:
    """One target given as an axis-aligned box per frame (OTB, UAV123)."""

    name: str
    frames: tuple[Path, ...]
    boxes: np.ndarray  # (N, 4) x, y, w, h in 0-based pixels; NaN rows where the target is not visible


@dataclass(frozen=True)
class RegionSequence:
    """One target given as a polygon per frame (VOT: rotated boxes or 4-value rectangles)."""

    name: str
    frames: tuple[Path, ...]
    polygons: tuple[np.ndarray, ...]  # one (K, 2) array of 0-based corner points per frame


@dataclass(frozen=True)
class MaskSequence:
    """Targets given as label PNGs (DAVIS, YouTube-VOS); masks are read lazily, one frame at a time."""

    name: str
    frames: tuple[Path, ...]
    annotations: dict[int, Path]  # frame index -> label PNG
    starts: dict[int, int]        # object id -> frame index where it is given (its first annotation)
    scored: frozenset[int]        # frame indices on which J and F are measured
    binary: bool                  # True: any non-zero pixel is the one object (DAVIS 2016), id 1


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


def list_frames(folder: Path) -> tuple[Path, ...]:
    """Image files of a frame folder in name order (benchmarks zero-pad their frame numbers)."""
    if not folder.is_dir():
        raise UserError(f"frame folder '{folder}' not found")
    frames = tuple(sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
    if not frames:
        raise UserError(f"frame folder '{folder}' has no images")
    return frames


def check_count(name: str, frames: int, annotated: int, what: str) -> None:
    """A shifted or truncated ground truth would score every frame against the wrong target."""
    if frames != annotated:
        raise UserError(f"sequence '{name}' has {frames} frames but {annotated} {what}; "
                        "the ground truth must have one entry per frame")


def read_list(path: Path) -> list[str]:
    """Sequence names, one per line (list.txt, ImageSets/*/*.txt)."""
    if not path.is_file():
        raise UserError(f"sequence list '{path}' not found")
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not names:
        raise UserError(f"sequence list '{path}' is empty")
    return names
