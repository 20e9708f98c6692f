"""How the inference stage and the supervisor reach each other and the other stages. The stage and
the supervisor hold their logic; a link moves typed messages (pipeline/messages.py). `StageLink` is
all the inference stage needs; the supervisor's side is `ZmqSupervisorLink` (events from every
worker) and one `CommandPipe` per inference process.

ZeroMQ: frames arrive PULL from each stream's capture endpoint, one socket per stream, so a frame
is taken only from the socket serving the stream it names (a remote capture cannot speak for
another stream) and a message that does not decode is dropped, counted and logged once; commands
PULL from an endpoint the supervisor binds for each process it starts (so the endpoint is in the
process's spec, and commands sent while it starts wait in the supervisor's pipe), events PUSH to the
supervisor, results PUSH to the sink; every queue is bounded."""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import zmq

from . import messages
from .config import CurveConfig
from .messages import BadMessage, Command, Event, Received, Result, StreamEnd, decode_frame
from .endpoints import bound_endpoint
from .metrics import REJECTED
from .process import log
from .security import Security, load_keys

REFILL_WAIT_MS = 2  # how long a full queue gets to show what is behind it
COMMANDS_WAITING = 1000  # commands a process that has not connected yet can be owed


class StageLink(Protocol):
    """The inference stage's side."""

    def wait(self, timeout_ms: int) -> bool:
        """True as soon as a command or a frame waits (False after `timeout_ms`)."""

    def commands(self) -> list[Command]:
        """Every command waiting, in the order sent."""

    def frames(self, wait_ms: int = 0) -> list[Received]:
        """Every frame (and stream end) waiting, oldest first, each frame with its pixels; waits up
        to `wait_ms` for the first."""

    def follow(self, stream: str, endpoint: str) -> None:
        """Take frames of `stream` from its capture at `endpoint` (and only from there)."""

    def unfollow(self, stream: str) -> None:
        ...

    def event(self, event: Event, pixels: np.ndarray | None = None, block: bool = True) -> bool:
        """To the supervisor; False when it was not taken (a full queue, or not in time when `block`)."""

    def result(self, msg: Result | StreamEnd, pixels: np.ndarray | None = None, block: bool = False) -> bool:
        """To the sink; False when its queue is full (the caller counts the drop)."""

    def close(self) -> None:
        ...


@dataclass(frozen=True)
class LinkSpec:
    """Where a ZeroMQ stage link binds and connects (the frames' endpoints come with each stream)."""

    cmd_endpoint: str
    events_endpoint: str
    results_endpoint: str
    queue_size: int
    results_hwm: int          # results queued for the sink: at least one full batch
    curve: CurveConfig | None


class ZmqStageLink:
    """`StageLink` over ZeroMQ sockets of `ctx` (its own context when none is given)."""

    def __init__(self, spec: LinkSpec, ctx: zmq.Context | None = None) -> None:
        self.queue_size = spec.queue_size
        self._own_ctx = ctx is None
        self.ctx = ctx or zmq.Context()
        self.security = Security(self.ctx, load_keys(spec.curve) if spec.curve else None)
        self._frames: dict[str, zmq.Socket] = {}   # stream -> PULL connected to its capture alone
        self._reported: set[tuple[str, str]] = set()  # (stream, reason) of rejected messages already logged
        self._commands = self._socket(zmq.PULL)
        # the supervisor binds it, like events and results (a CommandPipe for this process alone);
        # Security puts CURVE on every tcp:// socket when keys are configured.
        self.security.connect(self._commands, spec.cmd_endpoint)
        self._events = self._socket(zmq.PUSH, sndtimeo=2000)
        self.security.connect(self._events, spec.events_endpoint)
        self._results = self._socket(zmq.PUSH, sndhwm=spec.results_hwm, sndtimeo=2000)
        self.security.connect(self._results, spec.results_endpoint)
        self._poller = zmq.Poller()        # commands and frames
        self._poller.register(self._commands, zmq.POLLIN)
        self._frame_poller = zmq.Poller()

    def _socket(self, kind: int, **options: int) -> zmq.Socket:
        sock = self.ctx.socket(kind)
        sock.linger = 2000  # results still queued at shutdown reach the sink
        for name, value in options.items():
            setattr(sock, name, value)
        return sock

    def wait(self, timeout_ms: int) -> bool:
        return bool(self._poller.poll(timeout_ms))

    def commands(self) -> list[Command]:
        return [msg for msg, _ in messages.drain(self._commands)]

    def frames(self, wait_ms: int = 0) -> list[Received]:
        """A full queue means older frames may still sit in socket buffers behind it: keep taking
        while ZeroMQ's I/O thread brings more, so the newest one really is the newest."""
        ready = dict(self._frame_poller.poll(wait_ms)) if self._frames else {}
        received: list[Received] = []
        for stream, sock in self._frames.items():
            if sock not in ready:
                continue
            batch = self._take(stream, sock)
            received += batch
            while len(batch) >= self.queue_size and sock.poll(REFILL_WAIT_MS):
                batch = self._take(stream, sock)
                received += batch
        return received

    def _take(self, stream: str, sock: zmq.Socket) -> list[Received]:
        """Everything waiting on `stream`'s socket that decodes and names `stream`; the rest is dropped."""
        out = []
        while True:
            try:
                parts = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return out
            try:
                msg, pixels = decode_frame(parts)
            except BadMessage as exc:
                self._reject(stream, "undecodable", f"a message that {exc}")
                continue
            if msg.stream != stream:
                self._reject(stream, "other_stream", f"a message for stream {msg.stream[:64]!r}")
                continue
            out.append((msg, pixels))

    def _reject(self, stream: str, reason: str, what: str) -> None:
        REJECTED.labels(stream, reason).inc()
        if (stream, reason) not in self._reported:
            self._reported.add((stream, reason))
            log("inference", f"stream '{stream}': dropped {what} from its endpoint; more are only counted "
                             f"(siammask_rejected_messages_total{{reason=\"{reason}\"}})")

    def follow(self, stream: str, endpoint: str) -> None:
        sock = self._frames[stream] = self._socket(zmq.PULL, rcvhwm=self.queue_size)
        self.security.connect(sock, endpoint)
        for poller in (self._poller, self._frame_poller):
            poller.register(sock, zmq.POLLIN)

    def unfollow(self, stream: str) -> None:
        sock = self._frames.pop(stream)
        for poller in (self._poller, self._frame_poller):
            poller.unregister(sock)
        sock.close()

    def event(self, event: Event, pixels: np.ndarray | None = None, block: bool = True) -> bool:
        return messages.send(self._events, event, pixels, block=block)

    def result(self, msg: Result | StreamEnd, pixels: np.ndarray | None = None, block: bool = False) -> bool:
        return messages.send(self._results, msg, pixels, block=block)

    def close(self) -> None:
        for sock in (*self._frames.values(), self._commands, self._events, self._results):
            sock.close()
        self.security.close()
        if self._own_ctx:
            self.ctx.term()


class ZmqSupervisorLink:
    """The supervisor's end of the events every inference worker sends (PULL, bound)."""

    def __init__(self, security: Security, events_endpoint: str) -> None:
        self.pollable = security.ctx.socket(zmq.PULL)
        self.pollable.linger = 0
        security.bind(self.pollable, events_endpoint)
        self.endpoint = bound_endpoint(self.pollable)  # with the port ZeroMQ picked for a port '*'

    def events(self) -> list[Received]:
        """Every event waiting, with the init frame an added target's event carries."""
        return messages.drain(self.pollable)

    def close(self) -> None:
        self.pollable.close()


class CommandPipe:
    """The supervisor's commands to one inference process: PUSH bound at `endpoint` (where the
    launcher says the supervisor binds: an ipc:// file in the run folder, or tcp:// with a port
    ZeroMQ picks), made before the process starts so its spec names `self.endpoint`. A bound PUSH
    takes nothing until its peer has connected, so what is sent before waits here, in order; one
    pipe per process started, closed with it, so no command of a new process goes to a dead one."""

    def __init__(self, security: Security, endpoint: str) -> None:
        self._sock = security.ctx.socket(zmq.PUSH)
        self._sock.linger = 0
        self._sock.sndhwm = COMMANDS_WAITING
        security.bind(self._sock, endpoint)
        self.endpoint = bound_endpoint(self._sock)
        self._waiting: deque[Command] = deque()

    def send(self, command: Command) -> bool:
        """False, taking nothing, when COMMANDS_WAITING commands already wait: the process never
        took them (the caller restarts it, so its new spec holds the registry as it is)."""
        if len(self._waiting) >= COMMANDS_WAITING:
            return False
        self._waiting.append(command)
        self.flush()
        return True

    def flush(self) -> None:
        """Hand ZeroMQ what waits, once the process has connected."""
        while self._waiting and messages.send(self._sock, self._waiting[0]):
            self._waiting.popleft()

    def close(self) -> None:
        """Close the socket and remove its ipc:// file (ZeroMQ leaves it): one per process started
        would pile up in the run folder over a long run's restarts."""
        self._sock.close()
        if self.endpoint.startswith("ipc://"):
            Path(self.endpoint.removeprefix("ipc://")).unlink(missing_ok=True)
