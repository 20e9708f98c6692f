"""The supervisor's registry of streams and targets, and the specs built from it: an inference
process only ever holds a copy, built from the registry when it starts (every target from its init
frame and box, at its last box, with the same ids) and kept current by commands sent after that."""
from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from siammask.errors import UserError

from .config import PipelineConfig, StreamConfig
from .control import no_stream
from .inference import InferenceSpec, StageSpec, TargetSeed
from .messages import AddStream, Box
from .transport import LinkSpec


@dataclass
class TargetRecord:
    init_box: Box
    init_frame: np.ndarray
    box: Box
    frame: int                                # the last frame it was tracked on (box and the rest: there)
    score: float = 1.0
    presence: float = 1.0
    lost: bool = False                        # the tracker believes it is out of view; box: where last seen

    def update(self, frame: int, box: Box, score: float, presence: float, lost: bool) -> None:
        self.frame, self.box, self.score, self.presence, self.lost = frame, box, score, presence, lost

    def listing(self, target: int) -> dict[str, Any]:
        """Its entry in `ctl list`."""
        return {"id": target, "box": list(self.box), "state": "lost" if self.lost else "tracking",
                "presence": self.presence, "score": self.score, "frame": self.frame}


@dataclass
class StreamRecord:
    config: StreamConfig
    endpoint: str
    counter: Any                              # shared frame counter: ids go on across capture restarts
    hold: Any                                 # shared flag: a paused file or folder stops reading
    pending: dict[int, Box]                   # boxes not yet started on a frame
    slot: int                                 # the stream's place in the shared last-frame table
    registration: int                         # unique per registered stream (ids may come back)
    targets: dict[int, TargetRecord] = field(default_factory=dict)
    paused: bool = False
    state: str = "running"                    # running, stalled (no frames, being restarted), ended (file
                                              # done) or failed (unreadable)
    stalled_after: int = -1                   # stalled: the last frame published before it stalled
    next_target: int = 0

    @property
    def done(self) -> bool:
        """No frame will come any more (its file ended, or it failed); a stalled stream is not done."""
        return self.state in ("ended", "failed")


class Registry:
    """Stream id -> StreamRecord, with the shared values each stream's capture gets."""

    def __init__(self, cfg: PipelineConfig, mp: Any) -> None:
        self.cfg, self.mp = cfg, mp
        self.streams: dict[str, StreamRecord] = {}
        self.registrations = itertools.count(1)

    def __contains__(self, stream_id: str) -> bool:
        return stream_id in self.streams

    def __getitem__(self, stream_id: str) -> StreamRecord:
        """The stream's record; a user error naming the streams there are when there is none."""
        if stream_id not in self.streams:
            raise UserError(no_stream(stream_id, self.streams))
        return self.streams[stream_id]

    def register(self, stream: StreamConfig, endpoint: str) -> StreamRecord:
        slot = min(set(range(self.cfg.max_streams)) - {r.slot for r in self.streams.values()})
        rec = StreamRecord(stream, endpoint, self.mp.Value("q", 0, lock=False), self.mp.Value("b", 0, lock=False),
                           {i: tuple(b) for i, b in enumerate(stream.boxes)}, slot, next(self.registrations),
                           next_target=len(stream.boxes))
        self.streams[stream.id] = rec
        return rec

    def target_figures(self) -> list[tuple[str, int, float, float, bool]]:
        """(stream, target, score, presence, lost) of every target, for /metrics (read from the
        HTTP thread: each dict is copied in one step before it is walked)."""
        return [(sid, tid, t.score, t.presence, t.lost) for sid, rec in list(self.streams.items())
                for tid, t in list(rec.targets.items())]

    def stream_figures(self) -> list[tuple[str, bool]]:
        """(stream, stalled) of every stream, for /metrics (read from the HTTP thread, over a copy)."""
        return [(sid, rec.state == "stalled") for sid, rec in list(self.streams.items())]

    def paused(self) -> set[str]:
        return {sid for sid, rec in self.streams.items() if rec.paused}

    def add_stream_command(self, stream_id: str) -> AddStream:
        rec = self.streams[stream_id]
        return AddStream(stream=stream_id, endpoint=rec.endpoint, paused=rec.paused,
                         pending=tuple((t, tuple(b)) for t, b in rec.pending.items()), slot=rec.slot,
                         registration=rec.registration)

    def inference_spec(self, streams: Iterable[str], generation: int, link: LinkSpec,
                       metrics_every_s: float = 0.0) -> InferenceSpec:
        """What a new inference process that holds `streams` starts from (see StageSpec.metrics_every_s)."""
        cfg, mine = self.cfg, set(streams)
        held = [sid for sid in self.streams if sid in mine]
        seeds = tuple(TargetSeed(sid, tid, t.init_box, t.init_frame, t.box)
                      for sid in held for tid, t in self.streams[sid].targets.items())
        stage = StageSpec(tuple(self.add_stream_command(sid) for sid in held), seeds, generation,
                          bool(cfg.outputs.video or cfg.preview_port or cfg.console), cfg.inference_delay_ms,
                          metrics_every_s)
        return InferenceSpec(cfg.model, stage, link)
