"""Postprocess: paste each mask back into its frame, find its polygon, keep the state inside the
frame, and encode the result record (`siammask track --json` fields; the mask as COCO RLE)."""
from __future__ import annotations

import numpy as np

from siammask.config import TrackerConfig
from siammask.geometry.masks import box_corners, mask_polygon, mask_window, paste_back, paste_matrix
from siammask.io.results import frame_record
from siammask.tracker import TargetState, TrackResult, _clamp, state_box


def finish(cfg: TrackerConfig, frame: np.ndarray, old: TargetState, side: float, moved: TargetState,
           pos_yx: tuple[int, int], score: float, prob: np.ndarray) -> tuple[TargetState, TrackResult]:
    """One target's new state and result, exactly as Tracker.step makes them."""
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
    """What a target reports on the frame it starts on: its box, score 1, no mask (as track's frame 0)."""
    return TrackResult(state_box(state), box_corners(*state.pos, *state.size), 1.0, False, None, (-1, -1))


def record(frame_id: int, target_id: int, result: TrackResult) -> dict:
    """The JSON record of one target on one frame."""
    return frame_record(frame_id, result.box, result.polygon, result.score, result.lost, result.mask,
                        target=target_id)
