"""`siammask dataset build`: every format on a tiny synthetic sample written in that format's own
layout, the crop geometry (box, mask and padding agree with the true object), user errors, and
the real data in ../shared/data when it is there."""
from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from siammask.cli import main
from siammask.data.build import crop_object
from siammask.synthetic import make_sequence

from reference import DATA

S = 511
FRAMES = make_sequence(num_frames=3, size=(160, 120), seed=7)
BLOCK = (4, 4, 12, 9)  # x, y, w, h of a second, static object in the DAVIS palette sample


# ---------------------------------------------------------------- expected geometry

def context_side(w: float, h: float) -> float:
    p = 0.5 * (w + h)
    return math.sqrt((w + p) * (h + p))


def expected_crop_box(box, size: int = S) -> np.ndarray:
    """The frame box scaled by 127/s_z about its centre, which lands at the crop's centre S/2."""
    x, y, w, h = box
    k = 127 / context_side(w, h)
    return np.array([size / 2 - k * w / 2, size / 2 - k * h / 2, k * w, k * h])


def tight_box(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1], float)


def contour(mask: np.ndarray) -> np.ndarray:
    """The mask's outline as (N, 2) pixel coordinates, as annotation tools export it."""
    found, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    return max(found, key=len).reshape(-1, 2).astype(float)


def block_mask() -> np.ndarray:
    x, y, w, h = BLOCK
    mask = np.zeros(FRAMES[0].mask.shape, bool)
    mask[y:y + h, x:x + w] = True
    return mask


# ---------------------------------------------------------------- layout writers

def imwrite(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    near_lossless = [cv2.IMWRITE_JPEG_QUALITY, 100,
                     cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    assert cv2.imwrite(str(path), image, near_lossless)


def palette_png(path: Path, ids: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.frombytes("P", (ids.shape[1], ids.shape[0]), ids.astype(np.uint8).tobytes())
    image.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0] + [0] * (256 * 3 - 12))
    image.save(path)


def write_coco(root: Path) -> None:
    images, anns = [], []
    for i, f in enumerate(FRAMES):
        imwrite(root / "images" / f"img{i}.png", f.image)
        images.append({"id": i, "file_name": f"img{i}.png", "width": 160, "height": 120})
        anns.append({"id": 10 + i, "image_id": i, "category_id": 1, "iscrowd": 0, "bbox": list(f.box),
                     "segmentation": [contour(f.mask).ravel().tolist()]})
    anns.append({"id": 90, "image_id": 0, "category_id": 1, "iscrowd": 1, "bbox": [0, 0, 20, 20],
                 "segmentation": {"size": [120, 160], "counts": [0, 400, 18800]}})
    anns.append({"id": 91, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [5, 5, 3, 3],
                 "segmentation": [[5, 5, 8, 5, 8, 8, 5, 8]]})
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "instances.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "blob"}]}))


def write_ytb_vos(root: Path) -> None:
    for i, f in enumerate(FRAMES):
        imwrite(root / "JPEGImages" / "vid1" / f"{5 * i:05d}.jpg", f.image)
        palette_png(root / "Annotations" / "vid1" / f"{5 * i:05d}.png", f.mask * 3)


def write_davis(root: Path) -> None:
    """seqa: 2017 palette with objects 1 (moving) and 2 (absent in frame 1); seqb: 2016 binary,
    empty in frame 1, its JPEG folder a git-checked-out symlink; valseq: not in train.txt."""
    elsewhere = root / "frames_b"
    (root / "JPEGImages" / "480p").mkdir(parents=True)
    (root / "JPEGImages" / "480p" / "seqb").write_text("../../frames_b")
    for i, f in enumerate(FRAMES):
        for seq in ("seqa", "valseq"):
            imwrite(root / "JPEGImages" / "480p" / seq / f"{8 * i:05d}.jpg", f.image)
        ids = np.where(f.mask, 1, np.where(block_mask() & (i != 1), 2, 0))
        palette_png(root / "Annotations" / "480p" / "seqa" / f"{8 * i:05d}.png", ids)
        palette_png(root / "Annotations" / "480p" / "valseq" / f"{8 * i:05d}.png", f.mask * 1)
        imwrite(elsewhere / f"{i:05d}.jpg", f.image)
        imwrite(root / "Annotations" / "480p" / "seqb" / f"{i:05d}.png", f.mask * (i != 1) * np.uint8(255))
    (root / "ImageSets" / "2016").mkdir(parents=True)
    (root / "ImageSets" / "2016" / "train.txt").write_text("seqa\nseqb\n")


def write_segtrack(root: Path) -> None:
    for i, f in enumerate(FRAMES):
        imwrite(root / "bmx" / "images" / f"bmx_{600 + i:05d}.png", f.image)
        imwrite(root / "bmx" / "masks" / f"bmx_{600 + i:05d}.png", np.repeat(f.mask[..., None] * np.uint8(255), 3, 2))


def voc_xml(objects: list[tuple[int, tuple]]) -> str:
    body = "".join(f"<object><trackid>{t}</trackid><name>n1</name><bndbox><xmin>{x:g}</xmin><ymin>{y:g}</ymin>"
                   f"<xmax>{x + w:g}</xmax><ymax>{y + h:g}</ymax></bndbox></object>" for t, (x, y, w, h) in objects)
    return f"<annotation><size><width>160</width><height>120</height></size>{body}</annotation>"


def write_vid(root: Path) -> None:
    for i, f in enumerate(FRAMES):
        imwrite(root / "Data" / "VID" / "train" / "snip0" / f"{i:06d}.JPEG", f.image)
        xml = root / "Annotations" / "VID" / "train" / "snip0" / f"{i:06d}.xml"
        xml.parent.mkdir(parents=True, exist_ok=True)
        xml.write_text(voc_xml([(0, f.box)]))


def write_det(root: Path) -> None:
    for i, f in enumerate(FRAMES):
        imwrite(root / "Data" / "DET" / "train" / "a" / f"img{i}.JPEG", f.image)
        xml = root / "Annotations" / "DET" / "train" / "a" / f"img{i}.xml"
        xml.parent.mkdir(parents=True, exist_ok=True)
        xml.write_text(voc_xml([(0, f.box)] + ([(0, BLOCK)] if i == 0 else [])))


def write_vot(root: Path) -> None:
    """A diamond inscribed in the true box, so its axis-aligned box is the true box; frame 1 NaN."""
    rows = []
    for i, f in enumerate(FRAMES):
        imwrite(root / "seq" / f"{i + 1:08d}.jpg", f.image)
        x, y, w, h = f.box
        rows.append(",".join(f"{v:g}" for v in (x + w / 2, y, x + w, y + h / 2, x + w / 2, y + h, x, y + h / 2)))
    rows[1] = ",".join(["nan"] * 8)
    (root / "list.txt").write_text("seq\n")
    (root / "seq" / "groundtruth.txt").write_text("\n".join(rows) + "\n")


def write_otb(root: Path) -> None:
    for i, f in enumerate(FRAMES):
        imwrite(root / "Seq" / "img" / f"{i + 1:04d}.jpg", f.image)
    rows = ["\t".join(f"{v + (1 if j < 2 else 0):g}" for j, v in enumerate(f.box)) for f in FRAMES]
    (root / "Seq" / "groundtruth_rect.txt").write_text("\r\n".join(rows) + "\r\n")


def write_yolo_seg(root: Path) -> None:
    for i, f in enumerate(FRAMES):
        imwrite(root / "images" / "train" / f"im{i}.png", f.image)
        points = contour(f.mask) / (160, 120)
        label = root / "labels" / "train" / f"im{i}.txt"
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text("3 " + " ".join(f"{v:.6f}" for v in points.ravel()) + "\n")


def write_labelme(root: Path) -> None:
    """Polygon object, a rectangle and an __ignore__ region per image; im1 embeds its image."""
    x, y, w, h = BLOCK
    for i, f in enumerate(FRAMES):
        shapes = [{"label": "blob", "points": contour(f.mask).tolist(), "group_id": None, "shape_type": "polygon"},
                  {"label": "box", "points": [[x, y], [x + w - 1, y + h - 1]], "group_id": None,
                   "shape_type": "rectangle"},
                  {"label": "__ignore__", "points": [[140, 100], [150, 100], [150, 110]], "shape_type": "polygon"}]
        doc = {"version": "5.0.1", "shapes": shapes, "imagePath": f"im{i}.png", "imageData": None,
               "imageHeight": 120, "imageWidth": 160}
        if i == 1:
            doc["imageData"] = base64.b64encode(cv2.imencode(".png", f.image)[1].tobytes()).decode()
        else:
            imwrite(root / "shots" / f"im{i}.png", f.image)
        (root / "shots").mkdir(parents=True, exist_ok=True)
        (root / "shots" / f"im{i}.json").write_text(json.dumps(doc))
    (root / "coco_export.json").write_text(json.dumps({"images": [], "annotations": []}))


# ---------------------------------------------------------------- per-format expectations

# writer, expected tracks {(video, object): [(frame, source frame index, true box), ...]}, whether crops
# have masks, expected skips. pycocotools reads polygon vertices as continuous coordinates, so a
# polygon through the boundary pixels' centres (findContours) rasterises one pixel short on the
# right and bottom: COCO's mask check allows that one frame pixel.
def _track(video: str, obj: int, numbering, indices=(0, 1, 2), box=None):
    return (video, obj), [(numbering(i), i, box or FRAMES[i].box) for i in indices]


FORMATS = {
    "coco": (write_coco, dict(_track(f"img{i}", 10 + i, lambda _: 0, (i,)) for i in range(3)), True,
             {"crowd": 1, "tiny": 1}),
    "ytb_vos": (write_ytb_vos, dict([_track("vid1", 3, lambda i: 5 * i)]), True, {}),
    "davis": (write_davis, dict([_track("seqa", 1, lambda i: 8 * i), _track("seqa", 2, lambda i: 8 * i, (0, 2), BLOCK),
                                 _track("seqb", 1, lambda i: i, (0, 2))]), True, {"absent": 2}),
    "segtrack": (write_segtrack, dict([_track("bmx", 1, lambda i: i)]), True, {}),
    "vid": (write_vid, dict([_track("snip0", 0, lambda i: i)]), False, {}),
    "det": (write_det, dict([_track(f"img{i}", 1, lambda _: 0, (i,)) for i in range(3)]
                            + [_track("img0", 2, lambda _: 0, (0,), BLOCK)]), False, {}),
    "vot": (write_vot, dict([_track("seq", 1, lambda i: i, (0, 2))]), False, {"absent": 1}),
    "otb": (write_otb, dict([_track("Seq", 1, lambda i: i)]), False, {}),
    "yolo_seg": (write_yolo_seg, dict(_track(f"im{i}", 1, lambda _: 0, (i,)) for i in range(3)), True, {}),
    "labelme": (write_labelme, dict([_track(f"im{i}", 1, lambda _: 0, (i,)) for i in range(3)]
                                    + [_track(f"im{i}", 2, lambda _: 0, (i,), BLOCK) for i in range(3)]), True,
                {"__ignore__": 3}),
}


def build(root: Path, out: Path, fmt: str, *extra: str) -> int:
    return main(["dataset", "build", "--format", fmt, "--root", str(root), "--out", str(out), "--quiet", *extra])


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_format_builds_expected_crops(fmt, tmp_path, capsys):
    writer, expected, has_masks, skips = FORMATS[fmt]
    mask_slack = 1.0 if fmt == "coco" else 0.0
    writer(tmp_path / "src")
    assert build(tmp_path / "src", tmp_path / "out", fmt) == 0
    report = capsys.readouterr().err
    for reason, count in skips.items():
        assert f"{count} {reason}" in report, report
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert {k: index[k] for k in ("format_version", "crop_size", "exemplar_size", "context", "source_format")} == \
        {"format_version": 1, "crop_size": S, "exemplar_size": 127, "context": 0.5, "source_format": fmt}
    tracks = {(t["video"], t["object"]): t["frames"] for t in index["tracks"]}
    assert sorted(tracks) == sorted(expected)
    for key, want in expected.items():
        got = tracks[key]
        assert [e["frame"] for e in got] == [frame for frame, _, _ in want]
        for entry, (_, source_index, box) in zip(got, want):
            check_crop(tmp_path / "out", entry, FRAMES[source_index].image, box, has_masks, mask_slack)


def check_crop(out: Path, entry: dict, frame_image: np.ndarray, box, has_mask: bool, mask_slack: float) -> None:
    """Box = the true box's transform; mask's bounding box = the box within a crop pixel (plus
    mask_slack frame pixels); padding = frame mean."""
    assert entry["image"].startswith("crops/") and not Path(entry["image"]).is_absolute()
    crop = cv2.imread(str(out / entry["image"]))
    assert crop.shape == (S, S, 3)
    np.testing.assert_allclose(entry["box"], expected_crop_box(box), atol=0.01)
    k = 127 / context_side(box[2], box[3])
    if has_mask:
        mask = cv2.imread(str(out / entry["mask"]), cv2.IMREAD_GRAYSCALE)
        assert set(np.unique(mask)) <= {0, 255}
        x, y, w, h = tight_box(mask > 0)
        bx, by, bw, bh = entry["box"]
        np.testing.assert_allclose([x, y, x + w, y + h], [bx, by, bx + bw, by + bh], atol=1.0 + mask_slack * k)
    else:
        assert entry["mask"] is None
    # The crop shows the frame where the spec puts it: box centre on the middle pixel, scale k.
    mean = frame_image.reshape(-1, 3).mean(0)
    matrix = np.array([[k, 0, (S - 1) / 2 - k * (box[0] + box[2] / 2 - 0.5)],
                       [0, k, (S - 1) / 2 - k * (box[1] + box[3] / 2 - 0.5)]])
    want = cv2.warpAffine(frame_image, matrix, (S, S), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=tuple(mean))
    bx, by, bw, bh = np.round(entry["box"]).astype(int)
    assert np.abs(crop.astype(float) - want)[by:by + bh, bx:bx + bw].mean() < 5  # 1 frame px off gives ~13
    # The crop spans ~4x the context square, more than this 160x120 frame: its corner is padding.
    corner = (box[0] + box[2] / 2 - 0.5 - (S - 1) / 2 / k, box[1] + box[3] / 2 - 0.5 - (S - 1) / 2 / k)
    assert corner[0] < -1 and corner[1] < -1
    np.testing.assert_allclose(crop[:8, :8].reshape(-1, 3).mean(0), mean, atol=2.0)


def test_crop_centre_and_scale_by_hand():
    """The target centre lands on the crop's middle pixel and its size scales by 127/s_z."""
    f = FRAMES[0]
    x, y, w, h = f.box
    s_z = context_side(w, h)
    crop = crop_object(f.image, f.box, f.mask, S, (10.0, 20.0, 30.0))
    cx, cy = crop.box[0] + crop.box[2] / 2, crop.box[1] + crop.box[3] / 2
    assert abs(cx - (S - 1) / 2) <= 0.5 and abs(cy - (S - 1) / 2) <= 0.5
    assert crop.box[2] == pytest.approx(w * 127 / s_z, rel=0.01)
    assert crop.box[3] == pytest.approx(h * 127 / s_z, rel=0.01)
    ys, xs = np.nonzero(crop.mask)  # the mask's pixel centres are centred on the middle pixel too
    assert abs((xs.min() + xs.max()) / 2 - (S - 1) / 2) <= 1 and abs((ys.min() + ys.max()) / 2 - (S - 1) / 2) <= 1
    assert tuple(crop.image[0, 0]) == (10, 20, 30)


# ---------------------------------------------------------------- errors

def one_line_error(capsys, rc: int) -> str:
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("siammask: error: ") and "\n" not in err, err
    return err


def test_missing_root(tmp_path, capsys):
    err = one_line_error(capsys, build(tmp_path / "nowhere", tmp_path / "out", "davis"))
    assert "does not exist" in err


def test_no_annotations_found(tmp_path, capsys):
    (tmp_path / "src" / "JPEGImages" / "480p").mkdir(parents=True)
    (tmp_path / "src" / "Annotations" / "480p").mkdir(parents=True)
    err = one_line_error(capsys, build(tmp_path / "src", tmp_path / "out", "davis"))
    assert "no davis annotations found" in err and not (tmp_path / "out").exists()


@pytest.mark.parametrize("fmt, path, text, needle", [
    ("vot", "seq/groundtruth.txt", "1,2,3,4\n1,2,three,4\n", "groundtruth.txt:2: cannot read"),
    ("coco", "annotations/instances.json", '{"images": [', "instances.json: malformed JSON"),
    ("vid", "Annotations/VID/train/snip0/000001.xml", "<annotation><object>", "000001.xml: malformed XML at line"),
    ("yolo_seg", "labels/train/im0.txt", "0 0.1 0.2 0.3\n", "im0.txt: line 1"),
])
def test_malformed_file_is_named(fmt, path, text, needle, tmp_path, capsys):
    FORMATS[fmt][0](tmp_path / "src")
    (tmp_path / "src" / path).write_text(text)
    err = one_line_error(capsys, build(tmp_path / "src", tmp_path / "out", fmt))
    assert needle in err, err


def test_out_must_be_empty_unless_overwrite(tmp_path, capsys):
    write_segtrack(tmp_path / "src")
    assert build(tmp_path / "src", tmp_path / "out", "segtrack", "--limit", "1") == 0
    capsys.readouterr()
    assert "not empty" in one_line_error(capsys, build(tmp_path / "src", tmp_path / "out", "segtrack"))
    assert build(tmp_path / "src", tmp_path / "out", "segtrack", "--overwrite") == 0
    assert len(list((tmp_path / "out" / "crops" / "bmx").glob("*.jpg"))) == 3


# ---------------------------------------------------------------- real data

@pytest.mark.parametrize("fmt, folder", [("davis", "DAVIS-train"), ("coco", "COCO-mini")])
def test_real_data_limit_5(fmt, folder, tmp_path):
    if not (DATA / folder).is_dir():
        pytest.skip(f"../shared/data/{folder} absent")
    assert build(DATA / folder, tmp_path / "out", fmt, "--limit", "5") == 0
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    entries = [e for t in index["tracks"] for e in t["frames"]]
    assert index["tracks"] and len({(t["video"], e["frame"]) for t in index["tracks"] for e in t["frames"]}) <= 5
    for entry in entries:
        assert cv2.imread(str(tmp_path / "out" / entry["image"])).shape == (S, S, 3)
        assert entry["mask"] and (tmp_path / "out" / entry["mask"]).is_file()
        x, y, w, h = entry["box"]
        assert w > 0 and h > 0 and abs(x + w / 2 - S / 2) < 1e-2 and abs(y + h / 2 - S / 2) < 1e-2
