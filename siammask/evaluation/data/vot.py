"""VOT: SEQ/*.jpg (or SEQ/color/*.jpg from VOT2017 on), SEQ/groundtruth.txt with one region per line
(8 values: polygon corners, 4 values: x,y,w,h rectangle; 0-based), and list.txt naming the sequences;
read by data/layouts as `siammask dataset build` reads them."""
from __future__ import annotations

from pathlib import Path

from ...data.layouts.sequences import vot_sequences
from .common import RegionSequence


def load_vot(root: Path) -> list[RegionSequence]:
    """Sequences from list.txt, or every sub-folder with a groundtruth.txt when there is no list."""
    return [RegionSequence(seq.name, seq.frames, seq.regions) for seq in vot_sequences(root)]
