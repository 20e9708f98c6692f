"""Synthetic tracking sequences with exact ground truth, so tests can run the whole pipeline end to end.

A textured ellipse moves along a Lissajous path over a textured background, with mild
scale, aspect and rotation changes. The object's texture moves with it (it is warped, not
cut out of a fixed pattern), so appearance-matching trackers can follow it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .data.formats.records import mask_box

_MARGIN = 2  # pixels kept between the object and the frame edge
_SCALE_SWING = 0.15  # relative size change over the sequence
_ASPECT_SWING = 0.08  # relative change of the axes ratio ("slight shape change")
_TILT_SWING = math.radians(12.0)
_CODECS = ("FFV1", "MJPG")  # FFV1 is lossless; MJPG is the fallback for builds without it


@dataclass(frozen=True)
class SyntheticFrame:
    """One frame with its ground truth."""

    image: np.ndarray  # HxWx3 uint8 BGR
    box: tuple[float, float, float, float]  # x, y, w, h: tight bounding box of `mask`, 0-based pixels
    mask: np.ndarray  # HxW bool: the object's pixels


@dataclass(frozen=True)
class _Pose:
    cx: float
    cy: float
    a: float  # semi-axis along the object's x
    b: float  # semi-axis along the object's y
    angle: float  # radians
    zoom: float  # texture scale, so the texture grows and shrinks with the object


def make_sequence(
    num_frames: int = 60,
    size: tuple[int, int] = (320, 240),
    seed: int = 0,
    *,
    object_size: float = 0.25,
    period_frames: float = 150.0,
) -> list[SyntheticFrame]:
    """Render a deterministic sequence; `size` is (width, height).

    `object_size` is the object's major axis as a fraction of min(width, height);
    `period_frames` is the horizontal period of the path, which sets the speed
    (at most about 5 px/frame at the defaults).
    """
    width, height = size
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    rng = np.random.default_rng(seed)
    bg_mean = rng.uniform(50, 110, size=3)
    background = _texture(rng, height, width, cell=24, mean=bg_mean, std=22)
    obj_mean = np.clip(255 - bg_mean + rng.uniform(-30, 30, size=3), 120, 235)
    semi_major = object_size * min(width, height) / 2
    if semi_major < 4:
        raise ValueError(f"object would be under 8 px in a {width}x{height} frame; raise size or object_size")
    reach = math.ceil(semi_major * (1 + _SCALE_SWING) * (1 + _ASPECT_SWING)) + 1
    patch = _texture(rng, 2 * reach + 1, 2 * reach + 1, cell=max(3, reach // 4), mean=obj_mean, std=45)
    poses = _trajectory(rng, num_frames, width, height, semi_major, reach, period_frames)
    return [_render(background, patch, pose) for pose in poses]


def write_video(frames: Sequence[SyntheticFrame], path: str | Path, fps: float = 25.0) -> Path:
    """Write frames to an AVI (lossless FFV1 where available) and check every frame reads back."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].image.shape[:2]
    for codec in _CODECS:
        writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*codec), fps, (width, height))
        if writer.isOpened():
            break
    else:
        raise RuntimeError(f"OpenCV cannot write {path}: none of the codecs {_CODECS} is available")
    writer.set(cv2.VIDEOWRITER_PROP_QUALITY, 100)
    for frame in frames:
        writer.write(frame.image)
    writer.release()
    readable = _count_frames(path)
    if readable != len(frames):
        raise RuntimeError(f"{path} reads back {readable} frames, wrote {len(frames)}")
    return path


def write_image_folder(frames: Sequence[SyntheticFrame], folder: str | Path) -> Path:
    """Write frames as 00000.png, 00001.png, ... (lossless, so readers can compare pixels exactly)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for index, frame in enumerate(frames):
        target = folder / f"{index:05d}.png"
        if not cv2.imwrite(str(target), frame.image):
            raise RuntimeError(f"OpenCV could not write {target}")
    return folder


def _texture(rng: np.random.Generator, height: int, width: int, cell: int, mean: np.ndarray, std: float) -> np.ndarray:
    """Smooth colour noise: random values on a coarse grid, upsampled with cubic interpolation."""
    coarse = rng.standard_normal((height // cell + 3, width // cell + 3, 3)).astype(np.float32)
    smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    smooth = (smooth - smooth.mean(axis=(0, 1))) / (smooth.std(axis=(0, 1)) + 1e-6)
    return np.clip(mean + std * smooth, 0, 255).astype(np.uint8)


def _trajectory(
    rng: np.random.Generator,
    num_frames: int,
    width: int,
    height: int,
    semi_major: float,
    reach: int,
    period_frames: float,
) -> list[_Pose]:
    """Lissajous centre path; its amplitude keeps the object's outer radius `reach` inside the frame."""
    amp_x = width / 2 - reach - _MARGIN
    amp_y = height / 2 - reach - _MARGIN
    if min(amp_x, amp_y) < 1:
        raise ValueError(f"frame {width}x{height} is too small to move the object in; lower object_size or raise size")
    amp_x, amp_y = 0.9 * amp_x, 0.9 * amp_y
    phase = rng.uniform(0, 2 * math.pi, size=5)
    tilt0 = rng.uniform(-math.pi / 4, math.pi / 4)
    omega = 2 * math.pi / period_frames
    poses = []
    for t in range(num_frames):
        scale = 1 + _SCALE_SWING * math.sin(0.45 * omega * t + phase[2])
        stretch = 1 + _ASPECT_SWING * math.sin(0.7 * omega * t + phase[3])
        poses.append(
            _Pose(
                cx=(width - 1) / 2 + amp_x * math.sin(omega * t + phase[0]),
                cy=(height - 1) / 2 + amp_y * math.sin(0.77 * omega * t + phase[1]),
                a=semi_major * scale * stretch,
                b=0.65 * semi_major * scale / stretch,
                angle=tilt0 + _TILT_SWING * math.sin(0.6 * omega * t + phase[4]),
                zoom=scale,
            )
        )
    return poses


def _render(background: np.ndarray, patch: np.ndarray, pose: _Pose) -> SyntheticFrame:
    """Warp the object's texture to its pose and paste it where the analytic ellipse mask is true."""
    height, width = background.shape[:2]
    mask = _ellipse_mask(height, width, pose)
    reach = (patch.shape[0] - 1) / 2
    rotation = cv2.getRotationMatrix2D((reach, reach), -math.degrees(pose.angle), pose.zoom)
    rotation[:, 2] += (pose.cx - reach, pose.cy - reach)
    warped = cv2.warpAffine(patch, rotation, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    image = np.where(mask[..., None], warped, background)
    return SyntheticFrame(image=image, box=mask_box(mask), mask=mask)


def _ellipse_mask(height: int, width: int, pose: _Pose) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    dx, dy = xs - pose.cx, ys - pose.cy
    cos, sin = math.cos(pose.angle), math.sin(pose.angle)
    u = (cos * dx + sin * dy) / pose.a
    v = (-sin * dx + cos * dy) / pose.b
    return u * u + v * v <= 1.0


def _count_frames(path: Path) -> int:
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


def write_davis_layout(sequences: dict[str, Sequence[SyntheticFrame]], root: str | Path,
                       split: str = "train") -> Path:
    """Write sequences as a DAVIS 2016 data set (JPEGImages/480p, Annotations/480p with 0/255
    masks, ImageSets/2016/<split>.txt), so loaders and converters are tested on the real layout."""
    root = Path(root)
    for name, frames in sequences.items():
        images = root / "JPEGImages" / "480p" / name
        masks = root / "Annotations" / "480p" / name
        images.mkdir(parents=True, exist_ok=True)
        masks.mkdir(parents=True, exist_ok=True)
        for i, frame in enumerate(frames):
            cv2.imwrite(str(images / f"{i:05d}.jpg"), frame.image, [cv2.IMWRITE_JPEG_QUALITY, 95])
            cv2.imwrite(str(masks / f"{i:05d}.png"), frame.mask.astype(np.uint8) * 255)
    sets = root / "ImageSets" / "2016"
    sets.mkdir(parents=True, exist_ok=True)
    (sets / f"{split}.txt").write_text("".join(f"{name}\n" for name in sequences))
    return root


def make_training_sequences(count: int, frames: int = 30, seed: int = 123) -> dict[str, list[SyntheticFrame]]:
    """Varied sequences for training (frame size, object size and speed drawn per sequence)."""
    rng = np.random.default_rng(seed)
    sequences = {}
    for i in range(count):
        width = int(rng.choice([320, 480, 640]))
        height = int(width * rng.choice([0.5625, 0.75]))
        sequences[f"syn{i:04d}"] = make_sequence(num_frames=frames, size=(width, height), seed=1000 + i,
                                                 object_size=float(rng.uniform(0.15, 0.45)),
                                                 period_frames=float(rng.uniform(60, 200)))
    return sequences
