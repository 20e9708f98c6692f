"""Template/search pairs sampled from pre-cropped training sets (`siammask dataset build`).

A positive pair takes two frames of one track at most `frame_range` frames apart (a still image
pairs with itself under different augmentation); a negative pair takes the search crop from
another track. Sampling is a pure function of (seed, epoch, index), so runs are reproducible
and resumable.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from torch.utils.data import Dataset

from ..config import TrackerConfig
from ..errors import UserError
from .augment import AugmentConfig, augmented_crop
from ..variants import Geometry
from .targets import anchor_targets, crop_anchors, crop_points, point_targets

TEMPLATE_AUG = AugmentConfig(shift=4, scale=0.05, blur=0.0, color=0.1, gray=0.05)
SEARCH_AUG = AugmentConfig(shift=64, scale=0.18, blur=0.2, color=0.1, gray=0.05)


@dataclass(frozen=True)
class DataSource:
    path: str
    weight: float = 1.0
    frame_range: int = 100


@dataclass(frozen=True)
class Track:
    root: Path
    frames: tuple[dict, ...]


def load_tracks(source: DataSource) -> list[Track]:
    """Tracks of one built set; a clear error when the folder is not one."""
    index = Path(source.path) / "index.json"
    if not index.is_file():
        raise UserError(f"training set '{source.path}' has no index.json; build it with `siammask dataset build`")
    data = json.loads(index.read_text())
    tracks = [Track(index.parent, tuple(t["frames"])) for t in data.get("tracks", []) if t.get("frames")]
    if not tracks:
        raise UserError(f"training set '{source.path}' has no tracks")
    return tracks


class PairDataset(Dataset):
    """Yields dicts of numpy arrays: template, search, search_mask, has_mask, labels, deltas,
    delta_weight, mask_weight."""

    def __init__(self, sources: list[DataSource], tracker_cfg: TrackerConfig, geometry: Geometry, length: int,
                 seed: int, negative: float = 0.2) -> None:
        self.sources = sources
        self.tracks = [load_tracks(s) for s in sources]
        weights = np.array([s.weight for s in sources], np.float64)
        self.source_p = weights / weights.sum()
        self.cfg = tracker_cfg
        self.score_size = geometry.score_size(tracker_cfg.exemplar_size, tracker_cfg.instance_size)
        if geometry.anchor_free:
            self.grid, self._targets = crop_points(tracker_cfg, geometry), point_targets
        else:
            self.grid, self._targets = crop_anchors(tracker_cfg, geometry), anchor_targets
        self.length = length
        self.seed = seed
        self.negative = negative
        self.epoch = 0

    def __len__(self) -> int:
        return self.length

    def _pick_track(self, rng: np.random.Generator) -> tuple[int, Track]:
        s = int(rng.choice(len(self.sources), p=self.source_p))
        return s, self.tracks[s][int(rng.integers(len(self.tracks[s])))]

    @staticmethod
    def _read(track: Track, frame: dict) -> tuple[np.ndarray, np.ndarray | None]:
        image = cv2.imread(str(track.root / frame["image"]))
        if image is None:
            raise UserError(f"cannot read training crop {track.root / frame['image']}")
        mask = None
        if frame.get("mask"):
            mask = cv2.imread(str(track.root / frame["mask"]), cv2.IMREAD_GRAYSCALE)
            mask = None if mask is None else (mask > 127).astype(np.uint8)
        return image, mask

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        s, track = self._pick_track(rng)
        t_idx = int(rng.integers(len(track.frames)))
        lo, hi = max(0, t_idx - self.sources[s].frame_range), min(len(track.frames), t_idx + self.sources[s].frame_range + 1)
        negative = rng.random() < self.negative
        if negative:
            _, search_track = self._pick_track(rng)
            search_frame = search_track.frames[int(rng.integers(len(search_track.frames)))]
        else:
            search_track, search_frame = track, track.frames[int(rng.integers(lo, hi))]
        flip = rng.random() < 0.5
        z_img, _ = self._read(track, track.frames[t_idx])
        x_img, x_mask = self._read(search_track, search_frame)
        z, _, _ = augmented_crop(z_img, None, np.array(track.frames[t_idx]["box"]), self.cfg.exemplar_size,
                                 TEMPLATE_AUG, flip, rng)
        x, mask, box = augmented_crop(x_img, x_mask, np.array(search_frame["box"]), self.cfg.instance_size,
                                      SEARCH_AUG, flip, rng)
        has_mask = mask is not None and not negative
        targets = self._targets(self.grid, None if negative else box, self.score_size, has_mask, rng)
        return {
            "template": z.transpose(2, 0, 1).astype(np.float32),
            "search": x.transpose(2, 0, 1).astype(np.float32),
            "search_mask": (mask if mask is not None else np.zeros(x.shape[:2], np.uint8)).astype(np.float32)[None],
            "has_mask": np.array(has_mask),
            "labels": targets.labels,
            "deltas": targets.deltas,
            "delta_weight": targets.delta_weight,
            "mask_weight": targets.mask_weight,
        }
