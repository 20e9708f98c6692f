"""Label PNGs of the VOS layouts (DAVIS 2016/2017, YouTube-VOS, SegTrack).

The rule: a palette PNG holds object ids (0 background, 255 void: returned as `void`, never as an
object); any other PNG (grey 0/255 as in DAVIS 2016, or RGB) is one binary object, id 1 where its
grey value is >= 128, so masks saved with lossy smoothing still read as the object they show.
Pillow reads palette indices; OpenCV would expand them to colours and lose the ids.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ...errors import UserError

VOID = 255


@dataclass(frozen=True)
class LabelImage:
    """One frame's labels: `ids` HxW uint8 (0 background and void), `void` HxW bool."""

    ids: np.ndarray
    void: np.ndarray

    def objects(self) -> dict[int, np.ndarray]:
        """Object id -> HxW bool mask, for the ids present in this frame."""
        return {int(i): self.ids == i for i in np.unique(self.ids) if i != 0}


def read_label_png(path: Path, binary: bool = False) -> LabelImage:
    """The frame's labels by the rule above; `binary` merges every id into object 1 (DAVIS 2016
    scores one object per sequence even where the file holds several)."""
    try:
        with Image.open(path) as image:
            if image.mode == "P":
                raw = np.array(image, dtype=np.uint8)
                void = raw == VOID
                ids = np.where(void, 0, raw).astype(np.uint8)
            else:
                ids = (np.asarray(image.convert("L")) >= 128).astype(np.uint8)
                void = np.zeros(ids.shape, bool)
    except (OSError, SyntaxError, ValueError) as error:
        raise UserError(f"cannot read label image '{path}': {error}") from None
    if binary:
        ids = (ids > 0).astype(np.uint8)
    return LabelImage(ids, void)
