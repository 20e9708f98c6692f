"""The SiamMask tracker, engine-agnostic: init and step for many targets at once.

Per-target state is a small frozen dataclass passed in and returned; the Tracker object itself
only holds what never changes (engine, hyper-parameters, anchors, window).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .backend import Engine
from .config import TrackerConfig
from .errors import UserError
from .geometry.anchors import generate_anchors
from .geometry.crop import crop_and_resize, search_scale, template_side, to_chw_float
from .geometry.masks import box_corners, mask_polygon, mask_window, paste_back, paste_matrix
from .geometry.scoring import cosine_window, decode, fg_scores, pick_best, size_penalty


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
    lost: bool                              # score below the configured lost_threshold
    mask: np.ndarray | None                 # HxW bool, pasted-back probability > seg_thr (None on frame 0)
    pos_yx: tuple[int, int]                 # grid position the mask came from


def state_box(state: TargetState) -> tuple[float, float, float, float]:
    """[cx - w/2, cy - h/2, w, h] as floats."""
    (cx, cy), (w, h) = state.pos, state.size
    return (float(cx - w / 2), float(cy - h / 2), float(w), float(h))


def validate_box(box: Sequence[float], frame_wh: tuple[int, int]) -> tuple[float, float, float, float]:
    """Reject boxes a tracker cannot start from, with a message that says how to fix them."""
    if len(box) != 4:
        raise UserError(f"box {list(box)} must have 4 numbers: x,y,w,h")
    x, y, w, h = (float(v) for v in box)
    if not all(np.isfinite([x, y, w, h])):
        raise UserError(f"box {x:g},{y:g},{w:g},{h:g} has a non-finite value; give x,y,w,h in pixels")
    if w <= 0 or h <= 0:
        raise UserError(f"box {x:g},{y:g},{w:g},{h:g} has zero or negative size; width and height must be > 0")
    fw, fh = frame_wh
    if x >= fw or y >= fh or x + w <= 0 or y + h <= 0:
        raise UserError(f"box {x:g},{y:g},{w:g},{h:g} lies outside the {fw}x{fh} frame; "
                        "give x,y,w,h of the target in the first frame")
    return x, y, w, h


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


def search_batch(cfg: TrackerConfig, jobs: Sequence[tuple[np.ndarray, TargetState]]) -> SearchBatch:
    """Stage 1: cut every target's search crop from its own frame, as one batch."""
    regions = [search_scale(s.size, cfg.exemplar_size, cfg.instance_size, cfg.context_amount) for _, s in jobs]
    sides = [float(round(s_x)) for s_x, _ in regions]
    crops = [crop_and_resize(frame, s.pos, side, cfg.instance_size, s.avg_color)
             for (frame, s), side in zip(jobs, sides)]
    return SearchBatch(to_chw_float(crops), sides, [scale for _, scale in regions])


def finish(cfg: TrackerConfig, frame: np.ndarray, old: TargetState, side: float, moved: TargetState,
           pos_yx: tuple[int, int], score: float, prob: np.ndarray) -> tuple[TargetState, TrackResult]:
    """Stage 3: paste the mask back into the frame, find its polygon, clamp the state to the frame."""
    frame_wh = (frame.shape[1], frame.shape[0])
    crop_xy = (old.pos[0] - side / 2, old.pos[1] - side / 2)
    window = mask_window(crop_xy, side, pos_yx, cfg.instance_size, cfg.exemplar_size, cfg.total_stride,
                         cfg.base_size)
    full = paste_back(prob, paste_matrix(window, prob.shape[0], frame_wh), frame_wh)
    polygon = mask_polygon(full, cfg.seg_thr)
    if polygon is None:
        polygon = box_corners(*moved.pos, *moved.size)
    clamped = _clamp(moved, frame_wh)
    return clamped, TrackResult(state_box(clamped), polygon, score, score < cfg.lost_threshold,
                                full > cfg.seg_thr, pos_yx)


def start_result(state: TargetState) -> TrackResult:
    """What a target reports on the frame it starts on: its box, score 1, no mask."""
    return TrackResult(state_box(state), box_corners(*state.pos, *state.size), 1.0, False, None, (-1, -1))


class Tracker:
    """Crops, runs the engine on a batch of targets, decodes, penalises, pastes masks back.

    step() is the three stages search_batch -> infer_batch -> finish for one frame; the streaming
    pipeline runs the same three stages on targets of many frames at once."""

    def __init__(self, engine: Engine, config: TrackerConfig) -> None:
        self.engine = engine
        self.cfg = config
        self.anchors = generate_anchors(config.total_stride, config.ratios, config.scales, config.score_size)
        self.window = cosine_window(config.score_size, config.num_anchors)

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
        batch = search_batch(self.cfg, [(frame, s) for s in states])
        picks = self.infer_batch(batch, states)
        out = [finish(self.cfg, frame, s, side, moved, yx, score, prob) for s, side, moved, yx, score, prob
               in zip(states, batch.sides, picks.states, picks.pos_yx, picks.scores, picks.probs)]
        return [o[0] for o in out], [o[1] for o in out]

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
        """Choose the best anchor and move the (unclamped) state towards it."""
        cfg = self.cfg
        score = fg_scores(cls)
        boxes = decode(loc, self.anchors)
        penalty = size_penalty(boxes, state.size * scale, cfg.penalty_k)
        best = pick_best(score, penalty, self.window, cfg.window_influence)
        pred = boxes[:, best] / scale
        lr = penalty[best] * score[best] * cfg.lr
        pos = np.array([pred[0] + state.pos[0], pred[1] + state.pos[1]])
        size = np.array([state.size[0] * (1 - lr) + pred[2] * lr, state.size[1] * (1 - lr) + pred[3] * lr])
        _, y, x = np.unravel_index(best, (cfg.num_anchors, cfg.score_size, cfg.score_size))
        return TargetState(pos, size, state.avg_color, state.features), (int(y), int(x)), float(score[best])


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


def _clamp(state: TargetState, frame_wh: tuple[int, int]) -> TargetState:
    """Keep the centre inside the frame and the size within [10, frame size]."""
    w, h = frame_wh
    pos = np.array([max(0, min(w, state.pos[0])), max(0, min(h, state.pos[1]))], np.float64)
    size = np.array([max(10, min(w, state.size[0])), max(10, min(h, state.size[1]))], np.float64)
    return TargetState(pos, size, state.avg_color, state.features)
