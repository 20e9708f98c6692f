"""Sequences with one region per line of a text file, read by data/layouts like `siammask eval`
reads them: VOT (SEQ/groundtruth.txt, 0-based, x,y,w,h or an 8-value rotated polygon reduced to
its axis-aligned box) and OTB / UAV123 (SEQ/groundtruth_rect.txt, 1-based x,y,w,h;
groundtruth_rect.N.txt is object N of the same video). Line i is the i-th image in name order;
NaN, all-zero or empty rows mean the target is not visible."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ..layouts.regions import Box, region_box, visible_box
from ..layouts.sequences import otb_sequences, vot_sequences
from .files import require_dir
from .records import FrameAnnotation, ObjectAnnotation

VOT_LAYOUT = "VOT: ROOT/list.txt, ROOT/SEQ/groundtruth.txt and ROOT/SEQ/*.jpg (or ROOT/SEQ/color/*.jpg)"
OTB_LAYOUT = "OTB: ROOT/SEQ/img/*.jpg and ROOT/SEQ/groundtruth_rect.txt"


def read_vot(root: Path) -> Iterator[FrameAnnotation]:
    """Sequences from ROOT/list.txt, else every subfolder with a groundtruth.txt."""
    for seq in vot_sequences(require_dir(root, VOT_LAYOUT)):
        yield from _frames(seq.name, seq.frames, {1: [region_box(r) for r in seq.regions]}, seq.source)


def read_otb(root: Path) -> Iterator[FrameAnnotation]:
    """ROOT is one sequence or a folder of them (OTB, UAV123_10fps); groundtruth_rect.N.txt is object N."""
    for seq in otb_sequences(require_dir(root, OTB_LAYOUT)):
        boxes = {o: [visible_box(row) for row in rows] for o, rows in seq.targets.items()}
        yield from _frames(seq.name, seq.frames, boxes, next(iter(seq.sources.values())))


def _frames(video: str, frames: tuple[Path, ...], boxes: dict[int, list[Box | None]],
            source: Path) -> Iterator[FrameAnnotation]:
    for i, image in enumerate(frames):
        objects = tuple(ObjectAnnotation(o, rows[i]) for o, rows in sorted(boxes.items()))
        yield FrameAnnotation(video, i, image, objects, source)
