"""Which frames one inference turn processes, and what it drops: a pure function of the messages
waiting and each stream's state, so the rule is tested without processes, sockets or a model.

The rule: of each stream's waiting frames only the newest is processed (so every target is updated
from the newest frame it gets); the older ones are dropped and reported with it. When a stream's
initial boxes wait for its first frame and that frame is among the older ones, it is processed too,
before the newest. A paused stream processes nothing: its frames are counted as paused."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .messages import FrameHeader, StreamEnd


@dataclass(frozen=True)
class Gate:
    """What the rule needs to know of a stream."""

    paused: bool
    pending: bool              # initial boxes wait for the stream's first frame


@dataclass(frozen=True)
class Pick:
    """One frame to process."""

    stream: str
    index: int                 # its place in the messages given to `select`
    skipped: int               # older frames of the stream left out for it: reported with it, not before
    capture_drops: int         # frames capture lost before it and before the skipped ones


@dataclass(frozen=True)
class Selection:
    firsts: tuple[Pick, ...]   # first frames that initial boxes start on: processed before `newest`
    newest: tuple[Pick, ...]
    paused: Mapping[str, tuple[int, int]]  # paused stream -> (its frames waiting, capture drops they report)
    waiting: Mapping[str, int]             # frames found waiting per stream (the queue-depth metric)
    latest: Mapping[str, int]              # index of each stream's newest frame: where added targets start
    ended: tuple[str, ...]                 # streams whose end came after their last frame

    def dropped(self, stream: str) -> int:
        """Frames of `stream` this turn drops at the inference stage."""
        return sum(p.skipped for p in (*self.firsts, *self.newest) if p.stream == stream)


def select(received: Sequence[FrameHeader | StreamEnd], streams: Mapping[str, Gate]) -> Selection:
    """Apply the rule to `received` (oldest first). Streams missing from `streams` were removed while
    their frames were on the way: their messages are ignored."""
    per_stream: dict[str, list[int]] = {}
    for i, msg in enumerate(received):
        per_stream.setdefault(msg.stream, []).append(i)
    firsts, newest, ended = [], [], []
    paused, waiting, latest = {}, {}, {}
    for stream, indices in per_stream.items():
        gate = streams.get(stream)
        if gate is None:
            continue
        if isinstance(received[indices[-1]], StreamEnd):
            ended.append(stream)
        frames = [i for i in indices if isinstance(received[i], FrameHeader)]
        if not frames:
            continue
        waiting[stream], latest[stream] = len(frames), frames[-1]
        if gate.paused:
            paused[stream] = (len(frames), sum(received[i].capture_drops for i in frames))
            continue
        # Each frame reports what capture lost just before it, so a first frame processed ahead of
        # the newest one takes the drops up to it, and the newest one the rest.
        at = next((k for k in range(len(frames) - 2, -1, -1) if received[frames[k]].first), None) \
            if gate.pending else None
        if at is not None:
            firsts.append(_pick(stream, frames[:at + 1], received))
        newest.append(_pick(stream, frames[at + 1 if at is not None else 0:], received))
    return Selection(tuple(firsts), tuple(newest), paused, waiting, latest, tuple(ended))


def _pick(stream: str, frames: list[int], received: Sequence[FrameHeader | StreamEnd]) -> Pick:
    """The last of `frames`; the others, and what capture lost before them, as its drops."""
    return Pick(stream, frames[-1], len(frames) - 1, sum(received[i].capture_drops for i in frames))
