"""The capture stage: one process per source. A reader thread pulls frames from OpenCV; the main
thread sends them on and watches the reader: a cv2 call that outlives its own timeouts (OpenCV can
hang after a camera reconnect) ends the process with STALLED, and the supervisor starts a new one.

Files and folders are played at their frame rate (optionally looped) and hold their place while
the stream is paused; cameras, URLs and pipes are read as fast as they deliver (a paused live
stream keeps reading, so it resumes on a current frame) and reconnected with backoff when they stop."""
from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zmq

from siammask.errors import UserError
from siammask.io.sources import FrameSource, open_source

from . import messages
from .config import CurveConfig, StreamConfig
from .exits import ENDED, FAILED, STALLED
from .messages import FrameHeader, StreamEnd
from .metrics import DROPPED, FRAMES
from .process import Backoff, StopFlag, log, route_logging
from .security import Security, load_keys

DEFAULT_FPS = 25.0
STALL_MARGIN_S = 5.0


@dataclass(frozen=True)
class CaptureSpec:
    stream: StreamConfig
    endpoint: str
    queue_size: int
    open_timeout_s: float
    read_timeout_s: float
    curve: CurveConfig | None
    run: int = 0       # which start of this stream's capture: frames lost in a killed one are told apart


@dataclass(frozen=True)
class Grabbed:
    frame: np.ndarray
    index: int
    read_ts: float
    first: bool   # the first frame of this source: where its initial boxes belong
    fps: float


class Slot:
    """A one-frame mailbox. Live sources overwrite an untaken frame (newest wins, counted as a
    drop); paced files wait instead, so a file's frames are only ever dropped downstream, or here
    when the source could not read them (`lose`). Each frame is taken with the count of frames lost
    before it, so a header never carries a loss that happened after its frame."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Grabbed | None = None
        self._lost = 0          # frames that never reached the sender: overwritten or unreadable
        self._lost_before = 0   # of those, the ones lost before the frame in the slot
        self._taken_lost = 0    # of those, the ones handed out with a frame already

    def lose(self, count: int) -> None:
        with self._cond:
            self._lost += count

    def put(self, item: Grabbed, wait: bool, stop: StopFlag) -> None:
        with self._cond:
            while wait and self._item is not None and not stop:
                self._cond.wait(0.1)
            if self._item is not None:
                self._lost += 1
            self._item, self._lost_before = item, self._lost
            self._cond.notify_all()

    def take(self, timeout: float) -> tuple[Grabbed | None, int]:
        """The waiting frame (None after `timeout`) and the frames lost before it since the last one."""
        with self._cond:
            if self._item is None:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            lost = 0
            if item is not None:
                lost, self._taken_lost = self._lost_before - self._taken_lost, self._lost_before
            self._cond.notify_all()
            return item, lost


class Reader(threading.Thread):
    """Opens, reads, paces and reconnects; `busy_since` is set while inside a cv2 call."""

    def __init__(self, spec: CaptureSpec, counter, hold, stop: StopFlag) -> None:
        super().__init__(daemon=True)
        self.spec, self.counter, self.hold, self.stop = spec, counter, hold, stop
        self.slot = Slot()
        self.busy_since: float | None = None
        self.result: int | None = None  # ENDED or FAILED once the thread is done
        where = Path(spec.stream.source).expanduser()
        self.finite = where.is_file() or where.is_dir()  # cameras, URLs and named pipes are live

    def run(self) -> None:
        """A mistake the reading does not expect ends the stream with one line, never a silent thread
        death (the process would wait for frames forever)."""
        try:
            self._run()
        except Exception as exc:  # noqa: BLE001 - whatever it is, the stream ends with a line saying so
            log(f"capture {self.spec.stream.id}", f"reading the source failed ({type(exc).__name__}: {exc}); "
                                                  "the stream ends")
            self.result = FAILED

    def _run(self) -> None:
        backoff = Backoff()
        spec = self.spec
        while not self.stop:
            started = time.monotonic()
            try:
                source = self._call(lambda: open_source(spec.stream.source, open_timeout_s=spec.open_timeout_s,
                                                        read_timeout_s=spec.read_timeout_s, skip_unreadable=True))
            except UserError as exc:
                if self.finite:
                    log(f"capture {self.spec.stream.id}", str(exc))
                    self.result = FAILED
                    return
                wait = backoff.next(0.0)
                log(f"capture {self.spec.stream.id}", f"{exc}; retrying in {wait:g} s")
                self._sleep(wait)
                continue
            with source:
                self._play(source)
            if self.stop:
                return
            if self.finite and not self.spec.stream.loop:
                self.result = ENDED
                return
            if not self.finite:
                wait = backoff.next(time.monotonic() - started)
                log(f"capture {self.spec.stream.id}", f"{source.name} stopped; reconnecting in {wait:g} s")
                self._sleep(wait)

    def _play(self, source: FrameSource) -> None:
        fps = self.spec.stream.fps or source.fps or DEFAULT_FPS
        period = 1.0 / fps if self.finite else 0.0
        due = time.monotonic()
        first = True
        frames: Iterator[np.ndarray] = iter(source)
        skipped = source.skipped
        while not self.stop:
            if self.finite and self.hold.value:
                time.sleep(0.05)
                due = time.monotonic()
                continue
            frame = self._call(lambda: next(frames, None))
            if source.skipped > skipped:  # unreadable images: their ids are lost at the capture
                self.counter.value += source.skipped - skipped
                self.slot.lose(source.skipped - skipped)
                skipped = source.skipped
            if frame is None:
                return
            if period:
                due += period
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                elif delay < -period:
                    due = time.monotonic()  # fell behind: keep the pace from now on, no burst
            index = self.counter.value
            self.counter.value = index + 1
            FRAMES.labels(self.spec.stream.id, "capture").inc()
            self.slot.put(Grabbed(frame, index, time.time(), first, fps), wait=self.finite, stop=self.stop)
            first = False

    def _call(self, fn):
        self.busy_since = time.monotonic()
        try:
            return fn()
        finally:
            self.busy_since = None

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self.stop and time.monotonic() < end:
            time.sleep(0.05)

    def stalled(self) -> bool:
        limit = max(self.spec.open_timeout_s, self.spec.read_timeout_s) + STALL_MARGIN_S
        since = self.busy_since
        return since is not None and time.monotonic() - since > limit


def run_capture(spec: CaptureSpec, counter, hold, listener: socket.socket | None = None) -> None:
    """Process entry point; `counter` is shared with the supervisor so frame ids survive restarts,
    and so is `hold`, set while the stream is paused; `listener`: the socket holding the port of a
    tcp endpoint that its launcher chose (see Launcher.listener)."""
    stop = StopFlag()
    name = f"capture {spec.stream.id}"
    route_logging(name)
    ctx = zmq.Context()
    security = Security(ctx, load_keys(spec.curve) if spec.curve else None)
    sock = ctx.socket(zmq.PUSH)
    sock.sndhwm = spec.queue_size
    sock.sndtimeo = 100
    sock.linger = 500
    try:
        security.bind(sock, spec.endpoint, listener)
    except UserError as exc:
        log(name, str(exc))
        os._exit(FAILED)
    reader = Reader(spec, counter, hold, stop)
    reader.start()
    dropped = 0  # since the last frame that got through: reported in its header
    code = ENDED
    while not stop:
        if reader.stalled():
            log(name, "the source stopped answering within its timeouts; restarting the capture process")
            os._exit(STALLED)  # a thread stuck inside cv2 cannot be stopped any other way
        item, lost = reader.slot.take(0.1)
        if lost:
            DROPPED.labels(spec.stream.id, "capture").inc(lost)
            dropped += lost
        if item is None:
            if reader.result is not None:
                code = reader.result
                break
            continue
        header = FrameHeader(spec.stream.id, item.index, item.first, item.fps, spec.run,
                             {"read": item.read_ts, "sent": time.time()}, dropped)
        if _send(sock, header, item.frame, must_arrive=item.first, stop=stop):
            dropped = 0
        else:
            DROPPED.labels(spec.stream.id, "capture").inc()
            dropped += 1
    if code == ENDED and not stop:
        _send(sock, StreamEnd(spec.stream.id), None, must_arrive=True, stop=stop)
    sock.close()
    security.close()
    ctx.term()
    os._exit(code)


def _send(sock: zmq.Socket, header: FrameHeader | StreamEnd, frame: np.ndarray | None, must_arrive: bool,
          stop: StopFlag) -> bool:
    """NOBLOCK for ordinary frames; a source's first frame (and its end) wait for the inference stage,
    because initial boxes belong to that exact frame."""
    if not must_arrive:
        return messages.send(sock, header, frame)
    while not stop:
        if messages.send(sock, header, frame, block=True):
            return True
    return False
