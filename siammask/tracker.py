"""The tracker, engine- and variant-agnostic: init and step for many targets at once.

Per-target state is a small frozen dataclass passed in and returned; the Tracker object itself
only holds what never changes (engine, hyper-parameters, the variant's grid and window). What
differs between variants (stride, score-map size, anchors or points) is data (siammask.variants).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .backend import Engine
from .config import TrackerConfig
from .geometry.anchors import generate_anchors, generate_points
from .geometry.crop import crop_and_resize, search_scale, template_side, to_chw_float
from .geometry.masks import (box_corners, guided_filter_available, guided_refine, mask_polygon, mask_window,
                             paste_back, paste_matrix)
from .geometry.scoring import cosine_window, decode, decode_points, fg_scores, pick_best, size_penalty
from .validate import box_in_frame
from .variants import Geometry, variant_spec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TargetState:
    """Everything that carries one target from frame to frame."""

    pos: np.ndarray        # (2,) float64 centre x, y in frame pixels
    size: np.ndarray       # (2,) float64 width, height
    avg_color: np.ndarray  # (3,) float64 BGR mean of the init frame: padding colour for every crop
    features: Any          # the engine's template features for this target (batch of one)


@dataclass(frozen=True)
class TrackResult:
    """What one step reports for one target."""

    box: tuple[float, float, float, float]  # x, y, w, h = [cx - w/2, cy - h/2, w, h] of the state
    polygon: np.ndarray                     # (4,2) rotated box corners
    score: float                            # unpenalised foreground score of the chosen anchor
    presence: float                         # 0-1: how likely the target is visible in this frame
    lost: bool                              # the tracker believes the target is not visible
    mask: np.ndarray | None                 # HxW bool, pasted-back probability > seg_thr (None on frame 0)
    pos_yx: tuple[int, int]                 # grid position the mask came from
    found: bool = False                     # re-acquired on this frame after being lost


def state_box(state: TargetState) -> tuple[float, float, float, float]:
    """[cx - w/2, cy - h/2, w, h] as floats."""
    (cx, cy), (w, h) = state.pos, state.size
    return (float(cx - w / 2), float(cy - h / 2), float(w), float(h))


def validate_box(box: Sequence[float], frame_wh: tuple[int, int]) -> tuple[float, float, float, float]:
    """Reject boxes a tracker cannot start from (the rules of siammask.validate, for every entry
    point), with a message that says how to fix them."""
    return box_in_frame(box, frame_wh)


@dataclass(frozen=True)
class SearchBatch:
    """Stage 1 output: one search crop per (frame, target) job."""

    crops: np.ndarray          # (B,3,S,S) float32 search crops
    sides: list[float]         # crop side in frame pixels, per target
    scales: list[np.float64]   # crop pixels per frame pixel, per target


@dataclass(frozen=True)
class Picks:
    """Stage 2 output: each target moved towards its best anchor (not yet clamped), with its mask."""

    states: list[TargetState]
    pos_yx: list[tuple[int, int]]  # grid position of the chosen anchor
    scores: list[float]
    probs: np.ndarray              # (B,S,S) mask probabilities at those positions


def start_result(state: TargetState) -> TrackResult:
    """What a target reports on the frame it starts on: its box, score 1, no mask."""
    return TrackResult(state_box(state), box_corners(*state.pos, *state.size), 1.0, 1.0, False, None, (-1, -1))


class Tracker:
    """Crops, runs the engine on a batch of targets, decodes, penalises, pastes masks back.

    step() is the three stages search_batch -> infer_batch -> finish for one frame; the streaming
    pipeline runs the same three stages on targets of many frames at once. Grid positions are
    (y, x) cells of the variant's score map; `grid` holds its anchors or points."""

    def __init__(self, engine: Engine, config: TrackerConfig) -> None:
        self.engine = engine
        self.cfg = config
        self.geometry: Geometry = variant_spec(engine.variant).geometry
        geo = self.geometry
        self.score_size = geo.score_size(config.exemplar_size, config.instance_size)
        if geo.anchor_free:
            self.grid = generate_points(geo.stride, self.score_size)
        else:
            self.grid = generate_anchors(geo.stride, geo.ratios, geo.scales, self.score_size)
        self._decode = decode_points if geo.anchor_free else decode
        self.window = cosine_window(self.score_size, geo.num_anchors)
        self.guide = config.mask_guide_radius > 0 and guided_filter_available()
        if config.mask_guide_radius > 0 and not self.guide:
            log.warning("this OpenCV has no contrib modules (cv2.ximgproc): masks are not refined along image "
                        "edges (coarser outlines); install opencv-contrib-python-headless (see the README)")

    def init(self, frame: np.ndarray, boxes: Sequence[Sequence[float]]) -> list[TargetState]:
        """Start one target per box (x, y, w, h) on `frame`; template features computed once here."""
        h, w = frame.shape[:2]
        avg = frame.mean(axis=(0, 1))
        starts = []
        for box in boxes:
            x, y, bw, bh = validate_box(box, (w, h))
            starts.append((np.array([x + bw / 2, y + bh / 2]), np.array([bw, bh])))
        crops = [crop_and_resize(frame, pos, template_side(size, self.cfg.context_amount),
                                 self.cfg.exemplar_size, avg) for pos, size in starts]
        feats = self.engine.template(to_chw_float(crops))
        return [TargetState(pos, size, avg, feats[i:i + 1]) for i, (pos, size) in enumerate(starts)]

    def step(self, frame: np.ndarray, states: Sequence[TargetState]) -> tuple[list[TargetState], list[TrackResult]]:
        """Track every target one frame; returns the new states and one result per target."""
        if not states:
            return [], []
        batch = self.search_batch([(frame, s) for s in states])
        picks = self.infer_batch(batch, states)
        out = [self.finish(frame, s, side, moved, yx, score, prob) for s, side, moved, yx, score, prob
               in zip(states, batch.sides, picks.states, picks.pos_yx, picks.scores, picks.probs)]
        return [o[0] for o in out], [o[1] for o in out]

    def search_batch(self, jobs: Sequence[tuple[np.ndarray, TargetState]]) -> SearchBatch:
        """Stage 1: cut every target's search crop from its own frame, as one batch."""
        cfg = self.cfg
        regions = [search_scale(s.size, cfg.exemplar_size, cfg.instance_size, cfg.context_amount) for _, s in jobs]
        sides = [float(round(s_x)) for s_x, _ in regions]
        crops = [crop_and_resize(frame, s.pos, side, cfg.instance_size, s.avg_color)
                 for (frame, s), side in zip(jobs, sides)]
        return SearchBatch(to_chw_float(crops), sides, [scale for _, scale in regions])

    def infer_batch(self, batch: "SearchBatch", states: Sequence[TargetState]) -> "Picks":
        """Engine heads for every crop against its own template, the best anchor, then its mask.
        The only stage that touches the engine; crops may come from different frames (streams)."""
        heads = self.engine.track(batch.crops, self.engine.concat([s.features for s in states]))
        picks = [self._pick(heads.cls[i], heads.loc[i], s, scale)
                 for i, (s, scale) in enumerate(zip(states, batch.scales))]
        pos_yx = [yx for _, yx, _ in picks]
        probs = _sigmoid(self.engine.mask(heads, np.array(pos_yx, np.int64)))
        return Picks([p[0] for p in picks], pos_yx, [p[2] for p in picks], probs)

    def _pick(self, cls: np.ndarray, loc: np.ndarray, state: TargetState,
              scale: np.float64) -> tuple[TargetState, tuple[int, int], float]:
        """Choose the best anchor (or point) and move the (unclamped) state towards it."""
        cfg = self.cfg
        score = fg_scores(cls)
        boxes = self._decode(loc, self.grid)
        penalty = size_penalty(boxes, state.size * scale, cfg.penalty_k)
        best = pick_best(score, penalty, self.window, cfg.window_influence)
        pred = boxes[:, best] / scale
        if not (np.isfinite(score[best]) and np.isfinite(pred).all() and np.isfinite(penalty[best])):
            return state, (self.score_size // 2, self.score_size // 2), 0.0  # no usable output: stay, lost
        lr = penalty[best] * score[best] * cfg.lr
        pos = np.array([pred[0] + state.pos[0], pred[1] + state.pos[1]])
        size = np.array([state.size[0] * (1 - lr) + pred[2] * lr, state.size[1] * (1 - lr) + pred[3] * lr])
        _, y, x = np.unravel_index(best, (self.geometry.num_anchors, self.score_size, self.score_size))
        return TargetState(pos, size, state.avg_color, state.features), (int(y), int(x)), float(score[best])

    def finish(self, frame: np.ndarray, old: TargetState, side: float, moved: TargetState,
               pos_yx: tuple[int, int], score: float, prob: np.ndarray) -> tuple[TargetState, TrackResult]:
        """Stage 3: paste the mask back into the frame, find its polygon, clamp the state to the frame."""
        cfg, geo = self.cfg, self.geometry
        frame_wh = (frame.shape[1], frame.shape[0])
        crop_xy = (old.pos[0] - side / 2, old.pos[1] - side / 2)
        window = mask_window(crop_xy, side, pos_yx, cfg.instance_size, cfg.exemplar_size, geo.stride,
                             geo.base_size)
        full = paste_back(prob, paste_matrix(window, prob.shape[0], frame_wh), frame_wh)
        if self.guide:
            full = guided_refine(full, frame, window, prob.shape[0], cfg.mask_guide_radius, cfg.mask_guide_eps)
        polygon = mask_polygon(full, cfg.seg_thr)
        if polygon is None:
            polygon = box_corners(*moved.pos, *moved.size)
        clamped = _clamp(moved, frame_wh)
        return clamped, TrackResult(state_box(clamped), polygon, score, score, score < cfg.lost_threshold,
                                    full > cfg.seg_thr, pos_yx)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


def _clamp(state: TargetState, frame_wh: tuple[int, int]) -> TargetState:
    """Keep the centre inside the frame and the size within [10, frame size]."""
    w, h = frame_wh
    pos = np.array([max(0, min(w, state.pos[0])), max(0, min(h, state.pos[1]))], np.float64)
    size = np.array([max(10, min(w, state.size[0])), max(10, min(h, state.size[1]))], np.float64)
    return TargetState(pos, size, state.avg_color, state.features)
