"""One data-layout layer: `siammask dataset build` (data/formats) and `siammask eval`
(evaluation/data) read a tiny generated sample of each layout (DAVIS 2016 grey masks, DAVIS 2017
and YouTube-VOS palettes with void 255, VOT with 4- and 8-value rows, OTB with two objects) and
must see the same objects, masks and boxes, frame by frame; a malformed row fails both the same way."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from siammask.cli import main
from siammask.data.formats import FORMATS
from siammask.data.formats.records import mask_box
from siammask.data.layouts.labels import read_label_png
from siammask.data.layouts.regions import region_box, visible_box
from siammask.errors import UserError
from siammask.evaluation.data import load_davis, load_otb, load_vot, load_ytbvos
from siammask.evaluation.labels import voc_palette
from siammask.synthetic import make_sequence

FRAMES = make_sequence(num_frames=4, size=(80, 60), seed=3)
BLOCK = (slice(40, 52), slice(4, 20))   # rows, cols of a static second object
VOID = (slice(2, 8), slice(60, 76))     # a void (255) band in the palette samples

View = dict[tuple[str, Path], dict[int, tuple[tuple[float, float, float, float], np.ndarray | None]]]


def _image(path: Path, index: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), FRAMES[index].image)


def _palette(path: Path, ids: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(ids.astype(np.uint8))
    image.putpalette(voc_palette())
    image.save(path)


def _ids(index: int, block: bool) -> np.ndarray:
    """Object 1 moving, object 2 a static block (absent in frame 2), void band over the top right."""
    ids = FRAMES[index].mask.astype(np.uint8)
    if block and index != 2:
        ids[BLOCK] = 2
    ids[VOID] = 255
    return ids


def write_davis2016(root: Path) -> None:
    """Grey masks with lossy-save artefacts: 200 counts as the object, 100 does not (grey >= 128)."""
    for i in range(len(FRAMES)):
        _image(root / "JPEGImages" / "480p" / "blob" / f"{i:05d}.jpg", i)
        grey = FRAMES[i].mask.astype(np.uint8) * 255
        grey[0, 0], grey[59, 79] = 200, 100
        path = root / "Annotations" / "480p" / "blob" / f"{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(grey).save(path)
    for split in ("train", "val"):
        (root / "ImageSets" / "2016").mkdir(parents=True, exist_ok=True)
        (root / "ImageSets" / "2016" / f"{split}.txt").write_text("blob\n")


def write_davis2017(root: Path) -> None:
    """Palette with two objects and void; the frame folder is a git symlink stand-in (a text file)."""
    for i in range(len(FRAMES)):
        _image(root / "frames_elsewhere" / f"{i:05d}.jpg", i)
        _palette(root / "Annotations" / "480p" / "pair" / f"{i:05d}.png", _ids(i, block=True))
    (root / "JPEGImages" / "480p").mkdir(parents=True)
    (root / "JPEGImages" / "480p" / "pair").write_text("../../frames_elsewhere")
    for split in ("train", "val"):
        (root / "ImageSets" / "2017").mkdir(parents=True, exist_ok=True)
        (root / "ImageSets" / "2017" / f"{split}.txt").write_text("pair\n")


def write_ytb_vos(root: Path) -> None:
    """Every fifth frame annotated (palette, void 255); object 2 enters in the second annotation."""
    for i in range(len(FRAMES)):
        _image(root / "JPEGImages" / "vid" / f"{5 * i:05d}.jpg", i)
        ids = _ids(i, block=i > 0)
        _palette(root / "Annotations" / "vid" / f"{5 * i:05d}.png", ids)
    objects = {"1": {"frames": ["00000", "00005"]}, "2": {"frames": ["00005"]}}
    (root / "meta.json").write_text(json.dumps({"videos": {"vid": {"objects": objects}}}))


VOT_ROWS = ["10,12,30,20", "14,10,44,16,34,40,4,34", "nan,nan,nan,nan,nan,nan,nan,nan", "0,0,0,0"]


def write_vot(root: Path) -> None:
    """A 4-value box, an 8-value rotated polygon, a NaN polygon and an all-zero box."""
    for i in range(len(FRAMES)):
        _image(root / "bag" / f"{i + 1:08d}.jpg", i)
    (root / "bag" / "groundtruth.txt").write_text("\n".join(VOT_ROWS) + "\n")
    (root / "list.txt").write_text("bag\n")


OTB_ROWS = {1: ["11,21,30,20", "12,22,30,20", "NaN,NaN,NaN,NaN", "14,24,30,20"],
            2: ["1,1,8,9", "2,1,8,9", "3,1,8,9", "4,1,8,9"]}


def write_otb(root: Path) -> None:
    """Jogging-like: two objects in groundtruth_rect.1.txt / .2.txt, 1-based, .webp frames."""
    for i in range(len(FRAMES)):
        _image(root / "Jog" / "img" / f"{i + 1:04d}.webp", i)
    for obj, rows in OTB_ROWS.items():
        (root / "Jog" / f"groundtruth_rect.{obj}.txt").write_text("\n".join(rows) + "\n")


def training_view(fmt: str, root: Path) -> View:
    """What the builder's converter yields: visible objects per (video, image) that has any."""
    view: View = {}
    for frame in FORMATS[fmt](root):
        if visible := {o.object_id: (o.box, o.mask) for o in frame.objects if o.box is not None}:
            view[frame.video, frame.image] = visible
    return view


def mask_view(seqs) -> View:
    """What the VOS evaluation scores against: the objects of every annotated frame."""
    view: View = {}
    for seq in seqs:
        for index, label in seq.annotations.items():
            masks = read_label_png(label, seq.binary).objects()
            view[seq.name, seq.frames[index]] = {i: (mask_box(m), m) for i, m in masks.items()}
    return view


def same(train: View, evaluated: View) -> None:
    assert train.keys() == evaluated.keys()
    for key, objects in train.items():
        assert objects.keys() == evaluated[key].keys(), key
        for obj, (box, mask) in objects.items():
            want_box, want_mask = evaluated[key][obj]
            assert box == pytest.approx(want_box), (key, obj)
            if want_mask is not None:
                assert np.array_equal(mask, want_mask), (key, obj)


def built_tracks(fmt: str, root: Path, out: Path) -> set[tuple[str, int]]:
    assert main(["dataset", "build", "--format", fmt, "--root", str(root), "--out", str(out), "--quiet"]) == 0
    return {(t["video"], t["object"]) for t in json.loads((out / "index.json").read_text())["tracks"]}


def test_davis_2016_grey_masks_read_alike(tmp_path):
    write_davis2016(tmp_path / "src")
    (seq,) = load_davis(tmp_path / "src", "2016")
    assert seq.binary and seq.starts == {1: 0}
    evaluated = mask_view([seq])
    same(training_view("davis", tmp_path / "src"), evaluated)
    first = evaluated["blob", seq.frames[0]][1][1]
    want = FRAMES[0].mask.copy()
    want[0, 0] = True  # 200 >= 128; the 100 at the far corner stays background
    assert np.array_equal(first, want)
    assert built_tracks("davis", tmp_path / "src", tmp_path / "out") == {("blob", 1)}


def test_davis_2017_palette_void_is_not_an_object(tmp_path):
    write_davis2017(tmp_path / "src")
    (seq,) = load_davis(tmp_path / "src", "2017")
    assert not seq.binary and seq.starts == {1: 0, 2: 0}
    assert seq.frames[0].resolve() == (tmp_path / "src" / "frames_elsewhere" / "00000.jpg").resolve()  # stand-in followed
    train, evaluated = training_view("davis", tmp_path / "src"), mask_view([seq])
    same(train, evaluated)
    assert {obj for objects in train.values() for obj in objects} == {1, 2}
    assert 2 not in evaluated["pair", seq.frames[2]]
    box, mask = evaluated["pair", seq.frames[0]][2]
    assert box == (4.0, 40.0, 16.0, 12.0) and mask.sum() == 12 * 16
    labels = read_label_png(seq.annotations[1])
    assert labels.void.sum() == 6 * 16 and np.all(labels.void[VOID]) and not labels.ids[VOID].any()
    assert built_tracks("davis", tmp_path / "src", tmp_path / "out") == {("pair", 1), ("pair", 2)}


def test_ytb_vos_palette_objects_entering_late(tmp_path):
    write_ytb_vos(tmp_path / "src")
    (seq,) = load_ytbvos(tmp_path / "src")
    assert seq.starts == {1: 0, 2: 1} and len(seq.annotations) == len(FRAMES)
    train, evaluated = training_view("ytb_vos", tmp_path / "src"), mask_view([seq])
    same(train, evaluated)
    assert not any(255 in objects for objects in train.values())
    assert built_tracks("ytb_vos", tmp_path / "src", tmp_path / "out") == {("vid", 1), ("vid", 2)}


def test_vot_4_and_8_value_rows_read_alike(tmp_path):
    write_vot(tmp_path / "src")
    (seq,) = load_vot(tmp_path / "src")
    train = training_view("vot", tmp_path / "src")
    evaluated = {("bag", frame): {1: (box, None)} for frame, polygon in zip(seq.frames, seq.polygons)
                 if (box := region_box(polygon)) is not None}
    same(train, evaluated)
    assert [train["bag", f][1][0] for f in seq.frames[:2]] == [(10, 12, 30, 20), (4, 10, 40, 30)]
    assert len(train) == 2  # the NaN polygon and the all-zero box are "not visible" on both sides
    assert seq.polygons[0] == pytest.approx(np.array([[10, 12], [40, 12], [40, 32], [10, 32]]))
    assert seq.polygons[1] == pytest.approx(np.array([[14, 10], [44, 16], [34, 40], [4, 34]]))


def test_otb_several_objects_are_objects_of_one_video(tmp_path):
    write_otb(tmp_path / "src")
    seqs = load_otb(tmp_path / "src")
    assert [s.name for s in seqs] == ["Jog-1", "Jog-2"]
    evaluated: View = {}
    for seq in seqs:
        obj = int(seq.name.rsplit("-", 1)[1])
        for frame, row in zip(seq.frames, seq.boxes):
            if (box := visible_box(row)) is not None:
                evaluated.setdefault(("Jog", frame), {})[obj] = (box, None)
    train = training_view("otb", tmp_path / "src")
    same(train, evaluated)
    frames = seqs[0].frames
    assert frames[0].suffix == ".webp"
    assert train["Jog", frames[0]] == {1: ((10, 20, 30, 20), None), 2: ((0, 0, 8, 9), None)}
    assert train["Jog", frames[2]] == {2: ((2, 0, 8, 9), None)}
    assert built_tracks("otb", tmp_path / "src", tmp_path / "out") == {("Jog", 1), ("Jog", 2)}


@pytest.mark.parametrize("row, message", [
    ("1,2,3,4,5,6", r"groundtruth.txt:2: expected 4 values \(x,y,w,h\) or 8 \(polygon corners\), got 6"),
    ("1,2,x,4", r"groundtruth.txt:2: cannot read '1,2,x,4' as numbers"),
])
def test_malformed_vot_row_fails_both_sides_alike(tmp_path, row, message):
    write_vot(tmp_path)
    (tmp_path / "bag" / "groundtruth.txt").write_text("\n".join([VOT_ROWS[0], row, *VOT_ROWS[2:]]) + "\n")
    with pytest.raises(UserError, match=message):
        list(FORMATS["vot"](tmp_path))
    with pytest.raises(UserError, match=message):
        load_vot(tmp_path)


def test_ground_truth_must_cover_every_frame_on_both_sides(tmp_path):
    write_otb(tmp_path)
    (tmp_path / "Jog" / "groundtruth_rect.2.txt").write_text("\n".join(OTB_ROWS[2][:3]) + "\n")
    message = "'Jog' has 4 frames but 3 lines in groundtruth_rect.2.txt"
    with pytest.raises(UserError, match=message):
        list(FORMATS["otb"](tmp_path))
    with pytest.raises(UserError, match=message):
        load_otb(tmp_path)
