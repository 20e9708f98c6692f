"""Which inference worker holds each stream: the one part of the inference stage that is the
cluster's. Locally there is one worker without a limit; on a cluster each worker holds up to
`worker.max_streams` streams, a new stream goes to the least loaded worker with room (a new worker
when none has), and a worker left without streams is retired a moment after its last one went.
The workers themselves are children of the supervisor (pipeline/children.py), started, watched and
restarted like every other stage."""
from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

RETIRE_AFTER_S = 2.0  # a worker left without streams stops this long after its last one went (its
                      # stream's end still reaches the sink), so its node's CPUs are free again


def assign(loads: Mapping[int, int], max_streams: int | None) -> int | None:
    """The worker a new stream goes to: of those with room, the one holding the fewest streams (the
    lowest number of those); None when every worker is full and a new one is needed."""
    room = [n for n, load in loads.items() if max_streams is None or load < max_streams]
    return min(room, key=lambda n: (loads[n], n)) if room else None


class Holders:
    """Stream -> worker number, and when each worker without streams retires."""

    def __init__(self, streams: Sequence[str], max_streams: int | None) -> None:
        self.max_streams = max_streams
        count = 1 if max_streams is None else max(1, math.ceil(len(streams) / max_streams))
        self.streams: dict[int, set[str]] = {n: set() for n in range(count)}
        self.holder = {stream: i % count for i, stream in enumerate(streams)}
        for stream, number in self.holder.items():
            self.streams[number].add(stream)
        self.retire_at: dict[int, float] = {}
        self.numbers = itertools.count(count)  # a new worker's number: never one used before

    def add(self, stream: str) -> tuple[int, bool]:
        """The worker that takes a new stream, and whether it is a new worker."""
        number = assign({n: len(s) for n, s in self.streams.items()}, self.max_streams)
        new = number is None
        if new:
            number = next(self.numbers)
            self.streams[number] = set()
        self.streams[number].add(stream)
        self.holder[stream] = number
        self.retire_at.pop(number, None)
        return number, new

    def remove(self, stream: str, now: float) -> None:
        """A worker left empty retires after RETIRE_AFTER_S, unless it is the last one."""
        number = self.holder.pop(stream)
        self.streams[number].discard(stream)
        if not self.streams[number] and len(self.streams) > 1:
            self.retire_at[number] = now + RETIRE_AFTER_S

    def retiring(self, now: float) -> list[int]:
        """Workers due to retire now; forgotten here (the caller stops them). One stays, empty or not."""
        due = sorted(n for n, at in self.retire_at.items() if now >= at)
        if len(due) == len(self.streams):
            del self.retire_at[due.pop(0)]
        for n in due:
            del self.retire_at[n], self.streams[n]
        return due
