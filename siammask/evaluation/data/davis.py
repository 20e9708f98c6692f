"""DAVIS 2016 / 2017: JPEGImages/480p/SEQ/*.jpg, Annotations/480p/SEQ/*.png, ImageSets/YEAR/SPLIT.txt.

2016 masks are 0/255 (one object); 2017 masks are palette PNGs whose indices are object ids, all
objects present in the first frame. The DAVIS toolkit scores every frame but the first and the last.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import UserError
from ..labels import read_labels
from .common import MaskSequence, list_frames, read_list

YEARS = ("2016", "2017")


def load_davis(root: Path, year: str | None = None, split: str = "val") -> list[MaskSequence]:
    """The sequences of ImageSets/YEAR/SPLIT.txt; year None takes 2016 when its list is there, else 2017."""
    if year is None:
        year = next((y for y in YEARS if (root / "ImageSets" / y / f"{split}.txt").is_file()), YEARS[0])
    if year not in YEARS:
        raise UserError(f"unknown DAVIS year '{year}'; use one of {', '.join(YEARS)}")
    names = read_list(root / "ImageSets" / year / f"{split}.txt")
    return [_sequence(root, name, binary=year == "2016") for name in names]


def _sequence(root: Path, name: str, binary: bool) -> MaskSequence:
    frames = list_frames(root / "JPEGImages" / "480p" / name)
    folder = root / "Annotations" / "480p" / name
    annotations = sorted(folder.glob("*.png")) if folder.is_dir() else []
    if not annotations:
        raise UserError(f"sequence '{name}' has no annotations in '{folder}'")
    index = {frame.stem: i for i, frame in enumerate(frames)}
    if annotations[0].stem != frames[0].stem:
        raise UserError(f"sequence '{name}': first annotation '{annotations[0].name}' is not of the first "
                        f"frame '{frames[0].name}'")
    if len(annotations) not in (1, len(frames)) or any(a.stem not in index for a in annotations):
        raise UserError(f"sequence '{name}' has {len(frames)} frames but {len(annotations)} annotations; "
                        "expected one per frame (or only the first frame's, for test sets)")
    first = read_labels(annotations[0])
    ids = [1] if binary else [int(v) for v in np.unique(first) if v != 0]
    if not ids or not first.any():
        raise UserError(f"sequence '{name}': the first annotation '{annotations[0]}' has no object")
    scored = frozenset(range(1, len(frames) - 1)) if len(annotations) > 1 else frozenset()
    return MaskSequence(name, frames, {index[a.stem]: a for a in annotations}, dict.fromkeys(ids, 0), scored, binary)
