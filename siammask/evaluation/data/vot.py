"""VOT: SEQ/*.jpg (or SEQ/color/*.jpg from VOT2017 on), SEQ/groundtruth.txt with one region per line
(8+ values: polygon corners, 4 values: x,y,w,h rectangle; 0-based), and list.txt naming the sequences."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import UserError
from .common import RegionSequence, check_count, list_frames, read_list, read_rows


def load_vot(root: Path) -> list[RegionSequence]:
    """Sequences from list.txt, or every sub-folder with a groundtruth.txt when there is no list."""
    listed = root / "list.txt"
    if listed.is_file():
        names = read_list(listed)
    else:
        names = sorted(p.name for p in root.iterdir() if (p / "groundtruth.txt").is_file()) if root.is_dir() else []
        if not names:
            raise UserError(f"no VOT sequences in '{root}': expected list.txt or SEQ/groundtruth.txt folders")
    return [_sequence(root / name) for name in names]


def _sequence(folder: Path) -> RegionSequence:
    if not folder.is_dir():
        raise UserError(f"VOT sequence folder '{folder}' not found (named in list.txt)")
    frames = list_frames(folder / "color" if (folder / "color").is_dir() else folder)
    path = folder / "groundtruth.txt"
    polygons = tuple(_polygon(row, path, number) for number, row in enumerate(read_rows(path, "ground truth"), 1))
    check_count(folder.name, len(frames), len(polygons), "lines in groundtruth.txt")
    return RegionSequence(folder.name, frames, polygons)


def _polygon(row: list[float], path: Path, number: int) -> np.ndarray:
    if len(row) == 4:
        x, y, w, h = row
        return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float64)
    if len(row) >= 6 and len(row) % 2 == 0:
        return np.array(row, np.float64).reshape(-1, 2)
    raise UserError(f"{path}:{number}: expected 4 values (x,y,w,h) or an even number >= 6 "
                    f"(polygon corners), got {len(row)}")
