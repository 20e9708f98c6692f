"""OTB and UAV123 (OTB-like copy): SEQ/img/*.jpg and SEQ/groundtruth_rect.txt with 1-based x,y,w,h,
read by data/layouts as `siammask dataset build` reads them.

A video with several targets (OTB's Jogging, Skating2: groundtruth_rect.1.txt, .2.txt, ...) is one
video with objects 1, 2 on both sides; the one-pass protocol tracks one target per run, so here each
object becomes its own sequence, SEQ-1, SEQ-2.
"""
from __future__ import annotations

from pathlib import Path

from ...data.layouts.regions import visible_box
from ...data.layouts.sequences import otb_sequences
from ...errors import UserError
from .common import BoxSequence


def load_otb(root: Path) -> list[BoxSequence]:
    """ROOT/img/ is one sequence; otherwise every sub-folder of `root` with an img/ folder is one."""
    out = []
    for seq in otb_sequences(root):
        for object_id, boxes in seq.targets.items():
            if visible_box(boxes[0]) is None:
                raise UserError(f"{seq.sources[object_id]}:1: the first frame has no box, so the tracker cannot start")
            name = f"{seq.name}-{object_id}" if len(seq.targets) > 1 else seq.name
            out.append(BoxSequence(name, seq.frames, boxes))
    return out
