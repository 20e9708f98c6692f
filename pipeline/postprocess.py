"""Postprocess: the result record of one target on one frame (`siammask track --json` fields, the
mask as COCO RLE). Decoding, paste-back and polygons are siammask.tracker's stages (search_batch ->
Tracker.infer_batch -> finish), which the inference process runs on all streams' targets at once."""
from __future__ import annotations

from siammask.io.results import result_record
from siammask.tracker import TrackResult


def record(frame_id: int, target_id: int, result: TrackResult) -> dict:
    """The JSON record of one target on one frame."""
    return result_record(frame_id, result, target=target_id)
