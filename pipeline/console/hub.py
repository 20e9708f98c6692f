"""What the console's viewers share, filled by the supervisor process and read by the HTTP threads:
the newest annotated JPEG of each stream (encoded once by the sink, whatever the number of viewers)
and the log of recent events. Both wake waiting viewers through one condition each."""
from __future__ import annotations

import base64
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

EVENTS_KEPT = 500        # the page shows the last few hundred
WAKE_S = 5.0             # a waiting viewer gets a keep-alive at least this often (a dead one is found)
VIEWER_FPS = 15.0        # pictures a viewer gets per second and stream at most: a screen needs no more,
                         # and on a small machine each one sent is CPU the inference stage does not get


class FrameBoard:
    """Newest JPEG per stream, with its Server-Sent Event (base64) made once for every viewer.
    `watching` is the count the sink reads (shared memory) to know whether to encode frames at all."""

    def __init__(self, watching: Any) -> None:
        self.watching = watching
        self._cond = threading.Condition()
        self._seq = itertools.count(1)
        self._frames: dict[str, tuple[int, bytes, bytes]] = {}  # stream -> (sequence, JPEG, its event)
        self._closed = False

    def put(self, stream: str, jpeg: bytes) -> None:
        """Kept with its Server-Sent Event made once: a viewer only copies bytes to its socket."""
        event = b'data: {"stream": %s, "jpeg": "%s"}\n\n' % (json.dumps(stream).encode(), base64.b64encode(jpeg))
        with self._cond:
            self._frames[stream] = (next(self._seq), jpeg, event)
            self._cond.notify_all()

    def keep(self, streams: set[str]) -> None:
        """Forget the pictures of streams no longer registered (one may arrive after its removal)."""
        with self._cond:
            for stream in set(self._frames) - streams:
                del self._frames[stream]

    def watch(self) -> None:
        """A viewer arrives. The first one after none makes the sink send every stream's newest
        picture at once (what is kept here is from when the last viewer left, until then)."""
        with self._cond:
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

    def updates(self) -> Iterator[bytes]:
        """For one viewer: the events of the pictures that changed since its last ones, newest only
        (a slow viewer skips pictures), at most VIEWER_FPS a second, empty at least every WAKE_S;
        ends when the board closes."""
        self.watch()
        seen: dict[str, int] = {}
        sent_at = 0.0
        try:
            while True:
                time.sleep(max(0.0, sent_at + 1 / VIEWER_FPS - time.monotonic()))
                sent_at = time.monotonic()
                with self._cond:
                    self._cond.wait_for(lambda: self._closed or any(
                        seq > seen.get(s, 0) for s, (seq, _, _) in self._frames.items()), WAKE_S)
                    if self._closed:
                        return
                    fresh = [(s, seq, event) for s, (seq, _, event) in self._frames.items() if seq > seen.get(s, 0)]
                seen.update((s, seq) for s, seq, _ in fresh)
                yield b"".join(event for _, _, event in fresh)
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
        every WAKE_S; ends when the log closes. An id from before a restart of serve starts over."""
        with self._cond:
            if after > self._seq:
                after = 0
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
