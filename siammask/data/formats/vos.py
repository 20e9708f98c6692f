"""Video object segmentation layouts with one label PNG per annotated frame: DAVIS 2016/2017,
YouTube-VOS and SegTrack v2. Label PNGs follow the one rule of data/layouts/labels.py (palette:
object ids, 255 void; any other PNG: object 1 where grey >= 128), the rule `siammask eval` uses."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ...errors import UserError
from ..layouts.images import find_image, subfolders
from ..layouts.labels import read_label_png
from ..layouts.sequences import labelled_sequence
from .files import require_dir
from .records import FrameAnnotation, ObjectAnnotation, mask_object

DAVIS_LAYOUT = "DAVIS: ROOT/JPEGImages/480p/SEQ/*.jpg and ROOT/Annotations/480p/SEQ/*.png"
YTB_LAYOUT = "YouTube-VOS: ROOT/JPEGImages/VIDEO/*.jpg and ROOT/Annotations/VIDEO/*.png"
SEGTRACK_LAYOUT = "SegTrack: ROOT/SEQ/images/* and ROOT/SEQ/masks/*.png"


def read_davis(root: Path) -> Iterator[FrameAnnotation]:
    """Frame numbers from the file names (00008.png -> 8). When ROOT/ImageSets/<year>/train.txt
    exists only the sequences it lists are read, so a full DAVIS folder never leaks val into training."""
    images = require_dir(root / "JPEGImages" / "480p", DAVIS_LAYOUT)
    labels = require_dir(root / "Annotations" / "480p", DAVIS_LAYOUT)
    for name in _train_list(root) or subfolders(labels):
        yield from _sequence(name, _numbered_pairs(name, labels / name, images / name))


def read_ytb_vos(root: Path) -> Iterator[FrameAnnotation]:
    """Frame numbers from the file names; object ids from the palette (meta.json is not needed)."""
    images = require_dir(root / "JPEGImages", YTB_LAYOUT)
    labels = require_dir(root / "Annotations", YTB_LAYOUT)
    for name in subfolders(labels):
        yield from _sequence(name, _numbered_pairs(name, labels / name, images / name))


def read_segtrack(root: Path) -> Iterator[FrameAnnotation]:
    """ROOT/SEQ/{images,masks} (or ROOT itself as one sequence); frame numbers are positions in
    name order, since SegTrack names frames after the source video (bmx_06668.png)."""
    require_dir(root, SEGTRACK_LAYOUT)
    folders = ([root] if (root / "masks").is_dir()
               else [root / n for n in subfolders(root) if (root / n / "masks").is_dir()])
    for folder in folders:
        labels = require_dir(folder / "masks", SEGTRACK_LAYOUT)
        pairs = [(i, label, _image_for(label, require_dir(folder / "images", SEGTRACK_LAYOUT)))
                 for i, label in enumerate(sorted(labels.glob("*.png")))]
        yield from _sequence(folder.name, pairs)


def _sequence(video: str, pairs: list[tuple[int, Path, Path]]) -> Iterator[FrameAnnotation]:
    """Frames of one sequence. An object seen earlier whose id is missing from a later frame is
    reported absent there, so the builder counts it as skipped."""
    seen: set[int] = set()
    for frame, label, image in pairs:
        masks = read_label_png(label).objects()
        seen |= masks.keys()
        objects = tuple(mask_object(i, masks[i]) if i in masks else ObjectAnnotation(i, None) for i in sorted(seen))
        yield FrameAnnotation(video, frame, image, objects, label)


def _numbered_pairs(name: str, labels: Path, images: Path) -> list[tuple[int, Path, Path]]:
    """(frame number, label, image) for every label PNG, numbered by its name."""
    sequence = labelled_sequence(name, images, labels)
    pairs = []
    for index, label in sorted(sequence.labels.items()):
        if not label.stem.isdigit():
            raise UserError(f"{label}: expected a frame-numbered name such as 00000.png")
        pairs.append((int(label.stem), label, sequence.frames[index]))
    return pairs


def _image_for(label: Path, images: Path) -> Path:
    image = find_image(images, label.stem)
    if image is None:
        raise UserError(f"{label}: no image named {label.stem}.* in {images}")
    return image


def _train_list(root: Path) -> list[str]:
    names: set[str] = set()
    for listing in sorted((root / "ImageSets").glob("*/train.txt")):
        names |= {line.strip() for line in listing.read_text().splitlines() if line.strip()}
    return sorted(names)
