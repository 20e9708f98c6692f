"""What the console's viewers share, filled by the supervisor process and read by the HTTP threads:
the newest annotated JPEG of each stream (encoded once by the sink, whatever the number of viewers)
and the log of recent events. Both wake waiting viewers through one condition each."""
from __future__ import annotations

import base64
import itertools
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

EVENTS_KEPT = 500        # the page shows the last few hundred
WAKE_S = 5.0             # a waiting viewer gets a keep-alive at least this often (a dead one is found)


class FrameBoard:
    """Newest JPEG per stream, with its base64 text made once for every viewer. `watching` is the
    count the sink reads (shared memory) to know whether to encode frames at all."""

    def __init__(self, watching: Any) -> None:
        self.watching = watching
        self._cond = threading.Condition()
        self._seq = itertools.count(1)
        self._frames: dict[str, tuple[int, bytes, str]] = {}  # stream -> (sequence, JPEG, base64)
        self._closed = False

    def put(self, stream: str, jpeg: bytes) -> None:
        with self._cond:
            self._frames[stream] = (next(self._seq), jpeg, base64.b64encode(jpeg).decode())
            self._cond.notify_all()

    def keep(self, streams: set[str]) -> None:
        """Forget the pictures of streams no longer registered (one may arrive after its removal)."""
        with self._cond:
            for stream in set(self._frames) - streams:
                del self._frames[stream]

    def watch(self) -> None:
        """A viewer arrives. The first one after none: what is kept is old (the sink stopped
        encoding), so it waits for the next frame rather than see a stale one."""
        with self._cond:
            if self.watching.value == 0:
                self._frames.clear()
            self.watching.value += 1

    def unwatch(self) -> None:
        with self._cond:
            self.watching.value -= 1

    def wait_fresh(self, stream: str, timeout_s: float) -> bytes | None:
        """The stream's next frame from the sink (or the kept one, if none comes in time)."""
        self.watch()
        try:
            with self._cond:
                before = self._frames.get(stream, (0,))[0]
                self._cond.wait_for(lambda: self._closed or self._frames.get(stream, (0,))[0] > before, timeout_s)
                found = self._frames.get(stream)
            return found[1] if found else None
        finally:
            self.unwatch()

    def updates(self) -> Iterator[list[tuple[str, str]]]:
        """For one viewer: lists of (stream, base64 JPEG) as they change, newest only (a slow viewer
        skips frames), an empty list at least every WAKE_S; ends when the board closes."""
        self.watch()
        seen: dict[str, int] = {}
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._closed or any(
                        seq > seen.get(s, 0) for s, (seq, _, _) in self._frames.items()), WAKE_S)
                    if self._closed:
                        return
                    fresh = [(s, seq, text) for s, (seq, _, text) in self._frames.items() if seq > seen.get(s, 0)]
                seen.update((s, seq) for s, seq, _ in fresh)
                yield [(s, text) for s, _, text in fresh]
        finally:
            self.unwatch()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class EventLog:
    """The last EVENTS_KEPT events (target added, removed, lost, found; stream added, removed,
    ended, paused, resumed; stage restarted), each a dict with a sequence number and time."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._events: deque[dict[str, Any]] = deque(maxlen=EVENTS_KEPT)
        self._seq = 0
        self._closed = False

    def add(self, event: str, **fields: Any) -> None:
        with self._cond:
            self._seq += 1
            self._events.append({"id": self._seq, "time": round(time.time(), 3), "event": event, **fields})
            self._cond.notify_all()

    def since(self, after: int) -> list[dict[str, Any]]:
        with self._cond:
            return [e for e in self._events if e["id"] > after]

    def follow(self, after: int) -> Iterator[list[dict[str, Any]]]:
        """Events after id `after` as they come (what is still kept first), an empty list at least
        every WAKE_S; ends when the log closes."""
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or self._seq > after, WAKE_S)
                if self._closed:
                    return
            fresh = self.since(after)
            if fresh:
                after = fresh[-1]["id"]
            yield fresh

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
