"""Video object segmentation layouts with one label PNG per annotated frame: DAVIS 2016/2017,
YouTube-VOS and SegTrack v2. Palette PNGs hold object ids (0 background, 255 void); any other
PNG is one binary object (id 1), thresholded at 128 so blurred masks still work."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ...errors import UserError
from .files import find_image, real_dir, require_dir
from .records import FrameAnnotation, ObjectAnnotation, mask_object

DAVIS_LAYOUT = "DAVIS: ROOT/JPEGImages/480p/SEQ/*.jpg and ROOT/Annotations/480p/SEQ/*.png"
YTB_LAYOUT = "YouTube-VOS: ROOT/JPEGImages/VIDEO/*.jpg and ROOT/Annotations/VIDEO/*.png"
SEGTRACK_LAYOUT = "SegTrack: ROOT/SEQ/images/* and ROOT/SEQ/masks/*.png"


def read_davis(root: Path) -> Iterator[FrameAnnotation]:
    """Frame numbers from the file names (00008.png -> 8). When ROOT/ImageSets/<year>/train.txt
    exists only the sequences it lists are read, so a full DAVIS folder never leaks val into training."""
    images = require_dir(root / "JPEGImages" / "480p", DAVIS_LAYOUT)
    labels = require_dir(root / "Annotations" / "480p", DAVIS_LAYOUT)
    for name in _train_list(root) or _subfolders(labels):
        yield from _sequence(name, _numbered_pairs(labels / name, images / name, DAVIS_LAYOUT))


def read_ytb_vos(root: Path) -> Iterator[FrameAnnotation]:
    """Frame numbers from the file names; object ids from the palette (meta.json is not needed)."""
    images = require_dir(root / "JPEGImages", YTB_LAYOUT)
    labels = require_dir(root / "Annotations", YTB_LAYOUT)
    for name in _subfolders(labels):
        yield from _sequence(name, _numbered_pairs(labels / name, images / name, YTB_LAYOUT))


def read_segtrack(root: Path) -> Iterator[FrameAnnotation]:
    """ROOT/SEQ/{images,masks} (or ROOT itself as one sequence); frame numbers are positions in
    name order, since SegTrack names frames after the source video (bmx_06668.png)."""
    require_dir(root, SEGTRACK_LAYOUT)
    folders = ([root] if (root / "masks").is_dir()
               else [root / n for n in _subfolders(root) if (root / n / "masks").is_dir()])
    for folder in folders:
        labels = require_dir(folder / "masks", SEGTRACK_LAYOUT)
        pairs = [(i, label, _image_for(label, folder / "images", SEGTRACK_LAYOUT))
                 for i, label in enumerate(sorted(labels.glob("*.png")))]
        yield from _sequence(folder.name, pairs)


def read_labels(path: Path) -> dict[int, np.ndarray]:
    """Object id -> HxW bool mask. A binary PNG always yields object 1, empty or not."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            if image.mode == "P":
                ids = np.asarray(image)
                return {int(i): ids == i for i in np.unique(ids) if i not in (0, 255)}
            return {1: np.asarray(image.convert("L")) >= 128}
    except OSError as exc:
        raise UserError(f"cannot read label image {path}: {exc}") from None


def _sequence(video: str, pairs: list[tuple[int, Path, Path]]) -> Iterator[FrameAnnotation]:
    """Frames of one sequence. An object seen earlier whose id is missing from a later frame is
    reported absent there, so the builder counts it as skipped."""
    seen: set[int] = set()
    for frame, label, image in pairs:
        masks = read_labels(label)
        seen |= masks.keys()
        objects = tuple(mask_object(i, masks[i]) if i in masks else ObjectAnnotation(i, None) for i in sorted(seen))
        yield FrameAnnotation(video, frame, image, objects, label)


def _numbered_pairs(labels: Path, images: Path, layout: str) -> list[tuple[int, Path, Path]]:
    """(frame number, label, image) for every label PNG, numbered by its name."""
    pairs = []
    for label in sorted(require_dir(labels, layout).glob("*.png")):
        if not label.stem.isdigit():
            raise UserError(f"{label}: expected a frame-numbered name such as 00000.png")
        pairs.append((int(label.stem), label, _image_for(label, images, layout)))
    return pairs


def _image_for(label: Path, images: Path, layout: str) -> Path:
    image = find_image(require_dir(images, layout), label.stem)
    if image is None:
        raise UserError(f"{label}: no image named {label.stem}.* in {images}")
    return image


def _train_list(root: Path) -> list[str]:
    names: set[str] = set()
    for listing in sorted((root / "ImageSets").glob("*/train.txt")):
        names |= {line.strip() for line in listing.read_text().splitlines() if line.strip()}
    return sorted(names)


def _subfolders(folder: Path) -> list[str]:
    """Names of the entries that are folders, or git's text stand-ins for folder symlinks."""
    return sorted(p.name for p in folder.iterdir() if real_dir(p).is_dir())
