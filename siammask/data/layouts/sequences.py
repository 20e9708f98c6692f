"""Sequences of the tracking and VOS layouts: where the frames are and which ground truth goes
with them. Every ground truth has one entry per frame of its sequence."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import UserError
from .images import list_images, real_dir, subfolders
from .regions import check_count, read_otb_boxes, read_vot_regions

_OTB_FILE = re.compile(r"groundtruth_rect(?:\.(\d+))?\.txt")  # .N. = object N (Jogging, Skating2)


@dataclass(frozen=True)
class VotSequence:
    """SEQ/*.jpg (or SEQ/color/*.jpg) with SEQ/groundtruth.txt: one (4, 2) region per frame."""

    name: str
    frames: tuple[Path, ...]
    regions: tuple[np.ndarray, ...]
    source: Path  # groundtruth.txt


@dataclass(frozen=True)
class OtbSequence:
    """SEQ/img/*.jpg with SEQ/groundtruth_rect[.N].txt: object id -> (frames, 4) 0-based boxes."""

    name: str
    frames: tuple[Path, ...]
    targets: dict[int, np.ndarray]
    sources: dict[int, Path]  # object id -> its ground-truth file


@dataclass(frozen=True)
class LabelledSequence:
    """A VOS sequence: its frames and, by frame index, the label PNG of each annotated frame."""

    name: str
    frames: tuple[Path, ...]
    labels: dict[int, Path]


def read_list(path: Path) -> list[str]:
    """Sequence names, one per line (list.txt, ImageSets/*/*.txt)."""
    if not path.is_file():
        raise UserError(f"sequence list '{path}' not found")
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not names:
        raise UserError(f"sequence list '{path}' is empty")
    return names


def vot_sequences(root: Path) -> list[VotSequence]:
    """Sequences from ROOT/list.txt, or every sub-folder with a groundtruth.txt when there is no list."""
    root = real_dir(root)
    if (root / "list.txt").is_file():
        names = read_list(root / "list.txt")
    else:
        names = [n for n in subfolders(root) if (root / n / "groundtruth.txt").is_file()]
        if not names:
            raise UserError(f"no VOT sequences in '{root}': expected list.txt or SEQ/groundtruth.txt folders")
    return [_vot_sequence(root / name) for name in names]


def _vot_sequence(folder: Path) -> VotSequence:
    folder = real_dir(folder)
    if not folder.is_dir():
        raise UserError(f"VOT sequence folder '{folder}' not found (named in list.txt)")
    frames = list_images(folder / "color" if (folder / "color").is_dir() else folder)
    source = folder / "groundtruth.txt"
    regions = tuple(read_vot_regions(source))
    check_count(folder.name, len(frames), len(regions), "lines in groundtruth.txt")
    return VotSequence(folder.name, frames, regions, source)


def otb_sequences(root: Path) -> list[OtbSequence]:
    """ROOT/img/ is one sequence; otherwise every sub-folder with an img/ folder is one (OTB, UAV123)."""
    root = real_dir(root)
    folders = [root] if (root / "img").is_dir() else [real_dir(root / n) for n in subfolders(root)
                                                      if real_dir(root / n / "img").is_dir()]
    if not folders:
        raise UserError(f"no OTB/UAV sequences in '{root}': expected SEQ/img/ and SEQ/groundtruth_rect.txt folders")
    return [_otb_sequence(folder) for folder in folders]


def _otb_sequence(folder: Path) -> OtbSequence:
    frames = list_images(folder / "img")
    files = {int(m.group(1) or 1): p for p in folder.glob("groundtruth_rect*.txt")
             if (m := _OTB_FILE.fullmatch(p.name))} or {1: folder / "groundtruth_rect.txt"}
    targets = {}
    for object_id, path in sorted(files.items()):
        targets[object_id] = read_otb_boxes(path)
        check_count(folder.name, len(frames), len(targets[object_id]), f"lines in {path.name}")
    return OtbSequence(folder.name, frames, targets, dict(sorted(files.items())))


def labelled_sequence(name: str, images: Path, labels: Path) -> LabelledSequence:
    """Frames of images/ paired with the label PNGs of labels/ by file stem (00005.png -> 00005.jpg)."""
    frames = list_images(images)
    index = {frame.stem: i for i, frame in enumerate(frames)}
    folder = real_dir(labels)
    annotated = {}
    for path in sorted(folder.glob("*.png")) if folder.is_dir() else []:
        if path.stem not in index:
            raise UserError(f"annotation '{path}' has no frame '{path.stem}' in '{images}'")
        annotated[index[path.stem]] = path
    if not annotated:
        raise UserError(f"sequence '{name}' has no annotations in '{labels}'")
    return LabelledSequence(name, frames, annotated)

