"""DAVIS 2016 / 2017: JPEGImages/480p/SEQ/*.jpg, Annotations/480p/SEQ/*.png, ImageSets/YEAR/SPLIT.txt,
read by data/layouts as `siammask dataset build` reads them.

2016 masks are 0/255 (one object); 2017 masks are palette PNGs whose indices are object ids (255
void), all objects present in the first frame. The DAVIS toolkit scores every frame but the first
and the last.
"""
from __future__ import annotations

from pathlib import Path

from ...data.layouts.labels import read_label_png
from ...data.layouts.sequences import labelled_sequence, read_list
from ...errors import UserError
from .common import MaskSequence

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
    seq = labelled_sequence(name, root / "JPEGImages" / "480p" / name, root / "Annotations" / "480p" / name)
    frames, annotations = seq.frames, seq.labels
    if 0 not in annotations:
        raise UserError(f"sequence '{name}': first annotation '{annotations[min(annotations)].name}' is not of "
                        f"the first frame '{frames[0].name}'")
    if len(annotations) not in (1, len(frames)):
        raise UserError(f"sequence '{name}' has {len(frames)} frames but {len(annotations)} annotations; "
                        "expected one per frame (or only the first frame's, for test sets)")
    ids = sorted(read_label_png(annotations[0], binary).objects())
    if not ids:
        raise UserError(f"sequence '{name}': the first annotation '{annotations[0]}' has no object")
    scored = frozenset(range(1, len(frames) - 1)) if len(annotations) > 1 else frozenset()
    return MaskSequence(name, frames, annotations, dict.fromkeys(ids, 0), scored, binary)
