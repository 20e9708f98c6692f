"""Training the presence model (siammask.presence) on the project's own training data.

Two fits, both closed-form, on data the evaluation never sees (DAVIS-train, SegTrackv2, COCO-mini,
COCO128-seg; not the LT clips, OTB, UAV123, VOT or DAVIS val):
1. The projection of the appearance vectors' layout half (`--dims`, 32 for the shipped model; 0:
   none): layouts of the same object in several frames (videos) or views (stills, jittered in
   place, size and mirror) against other objects and plain background; a linear discriminant (PCA,
   then whitening of the within-object scatter, then the main directions between objects) keeps
   what tells objects apart and drops what every crop shares. The parts half is used as it is.
2. The curve: the real tracker (no re-detection, never lost) follows the training videos and
   still-image "videos" (a COCO image under a drifting, zooming virtual camera) in which the
   target disappears by every mode of siammask.data.occlude; the contrast at its box on frames
   where it is visible and tracked (IoU >= 0.3) against frames where it is absent gives a
   logistic fit, classes weighted equally.
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..backend import Engine
from ..data.build import read_image
from ..data.formats import FORMATS, FrameAnnotation
from ..data.occlude import MODES, NEEDS_OTHER, occlude
from ..evaluation.regions import box_iou
from ..geometry.crop import crop_and_resize, template_side, to_chw_float
from ..presence import PresenceModel, layout_half
from ..tracker import Tracker

log = logging.getLogger(__name__)

# (format, folder under the data root): objects seen in several frames, and still images.
VIDEO_SOURCES = (("davis", "DAVIS-train"), ("segtrack", "SegTrackv2"))
STILL_SOURCES = (("coco", "COCO-mini"), ("yolo_seg", "COCO128-seg"))
MIN_SIDE = 16          # smaller objects are skipped (their template is mostly context)
STILL_VIEWS = 4        # views of one still-image object: itself and three jittered copies
JITTER = 0.08          # of the box side: shift and log-size noise of a jittered view
BACKGROUNDS = 2        # background crops per video frame
PCA_DIMS = 256
IOU_TRACKED = 0.3      # a visible frame counts as "present" when the box overlaps this much


@dataclass(frozen=True)
class FitReport:
    """What a fit saw, for its log."""

    vectors: int
    objects: int
    curve_frames_present: int
    curve_frames_absent: int
    slope: float
    offset: float
    accuracy: float  # balanced accuracy of the curve at presence 0.5 on its own samples


def _records(root: Path, sources: Sequence[tuple[str, str]]) -> Iterator[FrameAnnotation]:
    for fmt, folder in sources:
        yield from FORMATS[fmt](root / folder)


def _usable(box: Sequence[float] | None) -> bool:
    return box is not None and min(box[2], box[3]) >= MIN_SIDE


def _crop(image: np.ndarray, box: Sequence[float], rng: np.random.Generator | None, context: float,
          exemplar: int) -> np.ndarray:
    """The template crop of a box; with rng, a jittered and possibly mirrored view of it."""
    x, y, w, h = box
    centre, size = np.array([x + w / 2, y + h / 2]), np.array([w, h], np.float64)
    if rng is not None:
        centre = centre + rng.normal(size=2) * JITTER * size
        size = size * np.exp(rng.normal(size=2) * JITTER)
        if rng.random() < 0.5:
            image, centre = image[:, ::-1], np.array([image.shape[1] - centre[0], centre[1]])
    return crop_and_resize(np.ascontiguousarray(image), centre, template_side(size, context), exemplar,
                           image.mean(axis=(0, 1)))


def projection_samples(tracker: Tracker, root: Path, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(N,L) layout halves of appearance vectors and (N,) object ids: video objects over their
    frames, still objects in STILL_VIEWS views, background crops each their own id."""
    cfg = tracker.cfg
    crops: list[np.ndarray] = []
    ids: list[int] = []
    objects: dict[tuple[str, int], int] = {}

    def add(crop: np.ndarray, key: object) -> None:
        crops.append(crop)
        ids.append(objects.setdefault(key, len(objects)))

    for record in _records(root, VIDEO_SOURCES):
        image = read_image(record)
        for obj in record.objects:
            if _usable(obj.box):
                add(_crop(image, obj.box, None, cfg.context_amount, cfg.exemplar_size), (record.video, obj.object_id))
        height, width = image.shape[:2]
        for k in range(BACKGROUNDS):
            side = rng.uniform(MIN_SIDE * 2, min(height, width) / 2)
            box = (rng.uniform(0, width - side), rng.uniform(0, height - side), side, side * rng.uniform(0.5, 2))
            add(_crop(image, box, None, cfg.context_amount, cfg.exemplar_size), ("bg", record.video, record.frame, k))
    for record in _records(root, STILL_SOURCES):
        image = read_image(record)
        for obj in record.objects:
            if obj.ignore or not _usable(obj.box):
                continue
            for view in range(STILL_VIEWS):
                add(_crop(image, obj.box, rng if view else None, cfg.context_amount, cfg.exemplar_size),
                    (record.video, obj.object_id))
    vectors = [_layout(tracker.engine, tracker.engine.template(to_chw_float(crops[i:i + 64])))
               for i in range(0, len(crops), 64)]
    return np.concatenate(vectors), np.array(ids)


def _layout(engine: Engine, features: Any) -> np.ndarray:
    """The layout half of template features' appearance vectors: what the projection maps."""
    return layout_half(engine.appearance(features), features.cls.shape[1] + features.loc.shape[1])


def fit_projection(vectors: np.ndarray, ids: np.ndarray, dims: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(mean, projection (D,dims)) of a linear discriminant: PCA to PCA_DIMS, whitening of the
    scatter within objects (ids seen more than once), then the top directions between objects."""
    x = vectors.astype(np.float64)
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    pca = vt[:PCA_DIMS].T
    y = (x - mean) @ pca
    _, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    centres = np.zeros((len(counts), y.shape[1]))
    np.add.at(centres, inverse, y)
    centres /= counts[:, None]
    repeated = counts[inverse] >= 2
    within = y[repeated] - centres[inverse[repeated]]
    scatter = within.T @ within / len(within)
    scatter += 1e-3 * np.trace(scatter) / len(scatter) * np.eye(len(scatter))  # keep it invertible
    values, vectors_ = np.linalg.eigh(scatter)
    whiten = vectors_ / np.sqrt(values)
    between = centres @ whiten
    _, _, vb = np.linalg.svd(between - between.mean(axis=0), full_matrices=False)
    return mean.astype(np.float32), (pca @ whiten @ vb[:dims].T).astype(np.float32)


def still_video(image: np.ndarray, box: Sequence[float], frames: int,
                rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray]:
    """A still image as a video: a virtual camera drifting and zooming in a random walk (its view
    is 75-95% of the image, shown at 90% of the image's size), the box moving with it. Returns the
    frames and the (frames, 4) boxes."""
    height, width = image.shape[:2]
    out_w, out_h = int(width * 0.9), int(height * 0.9)
    zoom = 0.9
    centre = np.array([width / 2, height / 2])
    out, boxes = [], []
    for _ in range(frames):
        zoom = float(np.clip(zoom * np.exp(rng.normal() * 0.02), 0.75, 0.95))
        view = np.array([width * zoom, height * zoom])
        centre = np.clip(centre + rng.normal(size=2) * 2.0, view / 2, [width - view[0] / 2, height - view[1] / 2])
        x0, y0 = centre - view / 2
        scale = out_w / view[0]
        warp = np.array([[scale, 0, -x0 * scale], [0, out_h / view[1], -y0 * out_h / view[1]]])
        out.append(cv2.warpAffine(image, warp, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
        boxes.append([(box[0] - x0) * scale, (box[1] - y0) * out_h / view[1], box[2] * scale, box[3] * out_h / view[1]])
    return out, np.array(boxes, np.float64)


def video_clips(root: Path) -> Iterator[tuple[list[np.ndarray], np.ndarray]]:
    """The training videos (VIDEO_SOURCES) as (frames, boxes) of their first object, NaN where the
    object is absent; videos of fewer than 8 frames are skipped."""
    videos: dict[str, list[FrameAnnotation]] = {}
    for record in _records(root, VIDEO_SOURCES):
        videos.setdefault(record.video, []).append(record)
    for records in videos.values():
        records.sort(key=lambda r: r.frame)
        first = next((o.object_id for o in records[0].objects if _usable(o.box)), None)
        if first is None or len(records) < 8:
            continue
        boxes = []
        for record in records:
            box = next((o.box for o in record.objects if o.object_id == first), None)
            boxes.append(box if box is not None else (np.nan,) * 4)
        yield [read_image(r) for r in records], np.array(boxes, np.float64)


def curve_samples(tracker: Tracker, root: Path, rng: np.random.Generator, videos: int = 480,
                  frames: int = 30) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(contrast, present, real) of every frame after the first of `videos` still-image videos and
    of the training videos (real: True), each with one disappearance (mode drawn in turn from
    siammask.data.occlude's), tracked by `tracker` with the identity curve (presence =
    sigmoid(contrast)), no re-detection, no memory updates, presence measured on every frame."""
    calibrating = Tracker(tracker.engine, dataclasses.replace(
        tracker.cfg, presence_smooth=0.0, lost_threshold=0.0, found_threshold=0.0, memory_rate=0.0, redetect=False,
        verify_every=1),
        dataclasses.replace(tracker.presence, slope=1.0, offset=0.0))
    stills = [(record, obj) for record in _records(root, STILL_SOURCES) for obj in record.objects
              if not obj.ignore and _usable(obj.box)]
    order = rng.permutation(len(stills))
    contrasts: list[float] = []
    present: list[bool] = []
    made = 0
    for n, index in enumerate(order):
        if made == videos:
            break
        record, obj = stills[index]
        image = read_image(record)
        if not _fits_view(obj.box, image.shape):
            continue
        clip, boxes = still_video(image, obj.box, frames, rng)
        mode = MODES[made % len(MODES)]
        other = None
        if mode in NEEDS_OTHER:
            other = still_video(read_image(stills[order[n - 1]][0]), (0, 0, 1, 1), frames, rng)[0]
        start, length = int(rng.integers(6, frames // 2)), int(rng.integers(5, frames // 3))
        try:
            clip, boxes = occlude(clip, boxes, start, length, mode, rng, other)
        except ValueError as exc:  # e.g. `exit` on a target too large to leave the view
            log.debug("skipped %s %s: %s", record.video, mode, exc)
            continue
        made += 1
        _track_clip(calibrating, clip, boxes, contrasts, present)
    stills_done = len(present)
    for index, (clip, boxes) in enumerate(video_clips(root)):
        length = max(2, len(clip) // 4)
        start = int(rng.integers(1, len(clip) - length))
        mode = MODES[index % len(MODES)]
        other = still_video(read_image(stills[order[index]][0]), (0, 0, 1, 1), len(clip), rng)[0]
        try:
            clip, boxes = occlude(clip, boxes, start, length, mode, rng, other)
        except ValueError as exc:
            log.debug("skipped a video with %s: %s", mode, exc)
        _track_clip(calibrating, clip, boxes, contrasts, present)
    return np.array(contrasts), np.array(present), np.arange(len(present)) >= stills_done


def _track_clip(tracker: Tracker, clip: Sequence[np.ndarray], boxes: np.ndarray, contrasts: list[float],
                present: list[bool]) -> None:
    """Track one clip from its first box; append each later frame's contrast (presence through the
    identity curve) where the target is absent, or visible and tracked."""
    states = tracker.init(clip[0], [boxes[0]])
    for frame, truth in zip(clip[1:], boxes[1:]):
        states, results = tracker.step(frame, states)
        p = min(max(results[0].presence, 1e-9), 1 - 1e-9)
        visible = bool(np.isfinite(truth).all())
        if not visible or box_iou([results[0].box], [truth])[0] >= IOU_TRACKED:
            contrasts.append(float(np.log(p / (1 - p))))
            present.append(visible)


def _fits_view(box: Sequence[float], shape: tuple[int, ...]) -> bool:
    """A still object a video can be made of: not too large, and inside every drifting view."""
    height, width = shape[:2]
    x, y, w, h = box
    margin_x, margin_y = 0.1 * width, 0.1 * height
    return (w * h < 0.2 * width * height and x >= margin_x and y >= margin_y
            and x + w <= width - margin_x and y + h <= height - margin_y)


def fit_curve(contrast: np.ndarray, present: np.ndarray, real: np.ndarray, steps: int = 50) -> tuple[float, float]:
    """(slope, offset) of presence = sigmoid(slope * (contrast - offset)) by Newton's method on a
    weighted logistic loss: present and absent frames weigh as much in total, and within each, real
    videos as much as still-image ones (a still barely changes its look; real targets do)."""
    x, y = contrast.astype(np.float64), present.astype(np.float64)
    weight = np.zeros(len(x))
    for label in (True, False):
        groups = [g for g in ((present == label) & (real == r) for r in (True, False)) if g.any()]
        for group in groups:
            weight[group] = 0.5 / len(groups) / group.sum()
    a, b = 1.0, 0.0  # presence = sigmoid(a * x + b)
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(a * x + b)))
        g = weight * (p - y)
        grad = np.array([(g * x).sum(), g.sum()])
        h = weight * p * (1 - p)
        hess = np.array([[(h * x * x).sum(), (h * x).sum()], [(h * x).sum(), h.sum()]]) + 1e-9 * np.eye(2)
        a, b = np.array([a, b]) - np.linalg.solve(hess, grad)
    return float(a), float(-b / a)


def fit_presence(tracker: Tracker, root: Path, seed: int = 0, dims: int = 32) -> tuple[PresenceModel, FitReport]:
    """The whole recipe: the projection of the vectors' layout half (none with dims 0), then the
    curve measured through the tracker with it."""
    rng = np.random.default_rng(seed)
    mean = projection = None
    vectors, objects = 0, 0
    if dims:
        samples, ids = projection_samples(tracker, root, rng)
        vectors, objects = len(samples), int(ids.max() + 1)
        log.info("projection: %d appearance vectors of %d objects", vectors, objects)
        mean, projection = fit_projection(samples, ids, dims)
    projected = Tracker(tracker.engine, tracker.cfg, PresenceModel(mean, projection))
    contrast, present, real = curve_samples(projected, root, rng)
    slope, offset = fit_curve(contrast, present, real)
    predicted = contrast > offset
    accuracy = 0.5 * (predicted[present].mean() + (~predicted[~present]).mean())
    report = FitReport(vectors, objects, int(present.sum()), int((~present).sum()), slope, offset, float(accuracy))
    return PresenceModel(mean, projection, slope, offset), report
