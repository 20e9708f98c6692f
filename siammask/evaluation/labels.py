"""Result label PNGs written as the VOS benchmarks store them: palette images whose indices are
object ids (DAVIS 2017, YouTube-VOS) or 0/255 grey masks (DAVIS 2016); they read back through
siammask.data.layouts.labels.read_label_png like the ground truth."""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from PIL import Image


@functools.cache
def voc_palette() -> list[int]:
    """The 256-colour palette DAVIS and YouTube-VOS use (the PASCAL VOC bit-spreading scheme)."""
    palette = []
    for index in range(256):
        rgb = [0, 0, 0]
        value = index
        for bit in range(8):
            for channel in range(3):
                rgb[channel] |= ((value >> channel) & 1) << (7 - bit)
            value >>= 3
        palette.extend(rgb)
    return palette


def write_labels(path: Path, labels: np.ndarray, binary: bool) -> None:
    """Single-object results as 0/255 grey (DAVIS 2016 layout), several objects as a palette PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if binary:
        Image.fromarray(np.where(labels > 0, 255, 0).astype(np.uint8)).save(path)
        return
    image = Image.fromarray(labels.astype(np.uint8))
    image.putpalette(voc_palette())  # turns the grey image into a palette image, indices unchanged
    image.save(path)


def write_result_mask(path: Path, mask: np.ndarray | None, shape: tuple[int, int]) -> None:
    """One target's result mask as a 0/255 PNG; an empty one where the tracker gave none (a target
    it reports lost has no mask), so every frame has its file."""
    write_labels(path, mask if mask is not None else np.zeros(shape, bool), binary=True)
