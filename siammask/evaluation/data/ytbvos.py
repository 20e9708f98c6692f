"""YouTube-VOS: JPEGImages/SEQ/*.jpg, Annotations/SEQ/*.png (palette, object ids, 255 void) and
meta.json listing every object with the frames it is annotated in; frames and labels are read by
data/layouts as `siammask dataset build` reads them. Objects may enter after the first frame;
each starts from its first annotated frame. The valid/test splits annotate only that first frame,
so they produce masks for the benchmark server but no local scores."""
from __future__ import annotations

import json
from pathlib import Path

from ...data.layouts.sequences import labelled_sequence
from ...errors import UserError
from .common import MaskSequence


def load_ytbvos(root: Path) -> list[MaskSequence]:
    """All videos of meta.json, in name order."""
    meta = _meta(root / "meta.json")
    return [_sequence(root, name, video) for name, video in sorted(meta.items())]


def _meta(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"YouTube-VOS meta file '{path}' not found; --root must hold JPEGImages/, Annotations/ "
                        "and meta.json")
    try:
        videos = json.loads(path.read_text())["videos"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise UserError(f"'{path}' is not a YouTube-VOS meta.json (needs a 'videos' object): {error}") from None
    if not isinstance(videos, dict) or not videos:
        raise UserError(f"'{path}' lists no videos")
    return videos


def _sequence(root: Path, name: str, video: dict) -> MaskSequence:
    seq = labelled_sequence(name, root / "JPEGImages" / name, root / "Annotations" / name)
    index = {frame.stem: i for i, frame in enumerate(seq.frames)}
    starts = {}
    for obj, info in video.get("objects", {}).items():
        first = (info.get("frames") or [None])[0] if isinstance(info, dict) else None
        if first not in index or index[first] not in seq.labels:
            raise UserError(f"meta.json: object {obj} of '{name}' starts at frame '{first}', which has no "
                            "frame and annotation")
        starts[int(obj)] = index[first]
    if not starts:
        raise UserError(f"meta.json: video '{name}' has no objects")
    return MaskSequence(name, seq.frames, seq.labels, starts, frozenset(seq.labels), binary=False)
