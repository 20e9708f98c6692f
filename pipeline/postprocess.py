"""Postprocess: the result record of one target on one frame (`siammask track --json` fields, the
mask as COCO RLE). Decoding, paste-back and polygons are siammask.tracker's stages (search_batch ->
Tracker.infer_batch -> finish), which the inference process runs on all streams' targets at once."""
from __future__ import annotations

from siammask.io.results import frame_record
from siammask.tracker import TrackResult


def record(frame_id: int, target_id: int, result: TrackResult) -> dict:
    """The JSON record of one target on one frame."""
    return frame_record(frame_id, result.box, result.polygon, result.score, result.lost, result.mask,
                        target=target_id)
