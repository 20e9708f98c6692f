"""Every message between stages, typed: a frame from a capture, the supervisor's commands to the
inference stage, its events back, and its results for the sink. One codec for all of them: a JSON
header naming the type, then, when there is a frame, its raw pixels as a second part sent without
copying (the receiver gets a numpy view of ZeroMQ's buffer, not a copy).

Sequences travel as JSON lists and come back as tuples, so a message decodes equal to what was sent."""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
import zmq

Box = tuple[float, float, float, float]
Stamps = dict[str, float]  # wall-clock seconds a frame reached each point (see sink.STAGES)
PIXELS = "pixels"          # header key of the frame's dtype and shape, beside the message's fields
MIN_SIDE = 2               # px: the tracker's crop divides by a side minus one
MAX_FRAME_ID = 2**62       # frame ids go through the shared int64 table of last frames (sink.Accounts)


# --- capture -> inference ------------------------------------------------------------------------

@dataclass(frozen=True)
class FrameHeader:
    """One frame read from a source; its pixels follow as the second part."""

    stream: str
    frame: int                 # frames read from the source so far (across reconnects and restarts)
    first: bool                # the source's first frame: where its initial boxes belong
    fps: float
    run: int                   # which start of the stream's capture process sent it
    t: Stamps
    capture_drops: int         # frames the capture lost since the previous one that got through


@dataclass(frozen=True)
class StreamEnd:
    """A file stream ended (capture -> inference), or a stream's last result was sent (-> sink)."""

    stream: str


# --- supervisor -> inference (commands) and back (events) ----------------------------------------

@dataclass(frozen=True, kw_only=True)
class Command:
    generation: int = 0        # the inference process it is meant for: earlier ones' are ignored


@dataclass(frozen=True, kw_only=True)
class AddStream(Command):
    stream: str
    endpoint: str
    paused: bool
    pending: tuple[tuple[int, Box], ...]   # targets to start on the stream's next frame
    slot: int
    registration: int


@dataclass(frozen=True, kw_only=True)
class RemoveStream(Command):
    stream: str


@dataclass(frozen=True, kw_only=True)
class SetPaused(Command):
    stream: str
    paused: bool
    req: int                   # the control request waiting for the stage to confirm


@dataclass(frozen=True, kw_only=True)
class AddTarget(Command):
    stream: str
    target: int
    box: Box
    req: int


@dataclass(frozen=True, kw_only=True)
class RemoveTarget(Command):
    stream: str
    target: int


@dataclass(frozen=True, kw_only=True)
class Event:
    generation: int = 0        # the inference process that sent it: a replaced one's are ignored


@dataclass(frozen=True, kw_only=True)
class Ready(Event):
    """The model is loaded: captures may start."""


@dataclass(frozen=True, kw_only=True)
class Boxes(Event):
    """Where every target of a stream is after a frame, and how sure the tracker is (for `ctl list`)."""

    stream: str
    frame: int
    boxes: tuple[tuple[int, Box], ...]     # (target, box) of every target on that frame
    states: tuple[tuple[int, float, float, bool], ...]    # (target, score, presence, lost), same order


@dataclass(frozen=True, kw_only=True)
class TargetAdded(Event):
    """An initial box started; its init frame follows, so a restarted process can rebuild it."""

    stream: str
    target: int
    box: Box
    frame: int


@dataclass(frozen=True, kw_only=True)
class TargetFailed(Event):
    """An initial box, or a restored target, the tracker could not start (dropped)."""

    stream: str
    target: int
    error: str
    registration: int = 0  # the stream's (AddStream.registration): a stream removed and added again
                           # under its id must not lose a target to the old one's late report


LOST, FOUND = "lost", "found"


@dataclass(frozen=True, kw_only=True)
class TargetChanged(Event):
    """A target lost (the tracker believes it is out of view) or found again on `frame`. Sent to the
    supervisor (its registry, its log) and, the same message, to the sink, which publishes it (see
    sink.event_message)."""

    stream: str
    target: int
    frame: int
    time: float                # wall-clock seconds the frame was read (its result's capture_ts)
    change: str                # LOST or FOUND
    box: Box                   # lost: the last box where it was seen; found: where it was found
    score: float
    presence: float


@dataclass(frozen=True, kw_only=True)
class Reply(Event):
    """The answer to a command with a `req`; an added target's init frame follows."""

    req: int
    error: str | None = None
    stream: str = ""
    target: int = -1
    box: Box | None = None
    frame: int = -1

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, kw_only=True)
class MetricsSnapshot(Event):
    """A worker's metrics files, for a supervisor that cannot read them where they are (another
    node): (kind, size) of each; their bytes follow, one after the other (metrics.own_files)."""

    files: tuple[tuple[str, int], ...]


# --- inference -> sink (and TargetChanged above) -------------------------------------------------

@dataclass(frozen=True)
class Result:
    """The targets of one processed frame, with everything the sink needs for the public message
    and for counting frames that a killed stage took with it (see sink.Accounts)."""

    stream: str
    frame: int
    fps: float
    t: Stamps
    width: int
    height: int
    dropped: dict[str, int]    # capture, inference, sink: frames lost since the stream's last result
    paused_frames: int
    targets: tuple[dict[str, Any], ...]    # siammask track --json records, one per target
    slot: int
    registration: int
    generation: int
    capture_run: int


Message = Union[FrameHeader, StreamEnd, AddStream, RemoveStream, SetPaused, AddTarget, RemoveTarget, Ready, Boxes,
                TargetAdded, TargetFailed, TargetChanged, Reply, MetricsSnapshot, Result]
TYPES: dict[str, type] = {cls.__name__: cls for cls in Message.__args__}


def encode(msg: Message, pixels: np.ndarray | None = None) -> bytes:
    """The JSON header of `msg`; with `pixels`, their dtype and shape for the receiver to view them."""
    header = {"type": type(msg).__name__, **{f.name: getattr(msg, f.name) for f in dataclasses.fields(msg)}}
    if pixels is not None:
        header[PIXELS] = [pixels.dtype.str, list(pixels.shape)]
    return json.dumps(header).encode()


def decode(raw: bytes) -> tuple[Message, tuple[str, tuple[int, ...]] | None]:
    """The message and, when pixels follow, their (dtype, shape)."""
    header = json.loads(raw)
    cls = TYPES[header.pop("type")]
    layout = header.pop(PIXELS, None)
    msg = cls(**{k: _tuples(v) for k, v in header.items()})
    return msg, (layout[0], tuple(layout[1])) if layout else None


class BadMessage(ValueError):
    """Bytes that are not a well-formed message of what the socket carries (see `decode_frame`)."""


def _count(value: Any) -> bool:
    return type(value) is int and 0 <= value < MAX_FRAME_ID


def _finite(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


FRAME_FIELDS = {"stream": lambda v: type(v) is str, "frame": _count, "first": lambda v: type(v) is bool,
                "fps": lambda v: _finite(v) and v > 0, "run": _count, "capture_drops": _count,
                "t": lambda v: type(v) is dict and all(_finite(x) for x in v.values())}


def _is_image(layout: Any, size: int) -> bool:
    """[dtype, shape] of an HxWx3 uint8 image of `size` bytes, each side at least MIN_SIDE."""
    if not (isinstance(layout, list) and len(layout) == 2 and layout[0] == np.dtype(np.uint8).str):
        return False
    shape = layout[1]
    return (isinstance(shape, list) and len(shape) == 3 and shape[2] == 3
            and all(_count(n) and n >= MIN_SIDE for n in shape) and math.prod(shape) == size)


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number")


def decode_frame(parts: list[zmq.Frame]) -> Received:
    """A capture's message: a FrameHeader and its BGR pixels, or a StreamEnd. Captures can be on
    other hosts (remote streams), so every field is checked here and anything else is a BadMessage
    for the receiver to drop, never an error further in."""
    try:
        header = json.loads(parts[0].bytes, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise BadMessage("is not JSON") from None
    if not isinstance(header, dict):
        raise BadMessage("is not a JSON object")
    kind, layout = header.pop("type", None), header.pop(PIXELS, None)
    if kind == "StreamEnd" and len(parts) == 1 and layout is None and list(header) == ["stream"] \
            and type(header["stream"]) is str:
        return StreamEnd(header["stream"]), None
    if kind != "FrameHeader" or len(parts) != 2:
        raise BadMessage(f"is not a frame or a stream end (type {str(kind)[:40]!r}, {len(parts)} parts)")
    if set(header) != set(FRAME_FIELDS) or not all(FRAME_FIELDS[k](v) for k, v in header.items()):
        raise BadMessage("has a frame header with missing, unknown or out-of-range fields")
    if not _is_image(layout, len(parts[1].buffer)):
        raise BadMessage(f"has pixels that are not the HxWx3 8-bit image (sides >= {MIN_SIDE}) its header declares")
    return FrameHeader(**header), np.frombuffer(parts[1].buffer, dtype=np.uint8).reshape(layout[1])


def _tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value


Pixels = np.ndarray | None
Received = tuple[Message, Pixels]


def send(sock: zmq.Socket, msg: Message, pixels: Pixels = None, block: bool = False) -> bool:
    """Send `msg` (+ pixels, without copying); False when the peer's queue is full (the caller counts
    the drop). `block` waits for room (up to the socket's SNDTIMEO): for messages that must not be lost."""
    flags = 0 if block else zmq.NOBLOCK
    if pixels is not None:
        pixels = np.ascontiguousarray(pixels)
    try:
        if pixels is None:
            sock.send(encode(msg), flags)
        else:
            sock.send(encode(msg, pixels), flags | zmq.SNDMORE)
            sock.send(pixels, flags, copy=False)
    except zmq.Again:
        return False
    return True


def recv(sock: zmq.Socket, block: bool = True) -> Received | None:
    """One message and its pixels (a read-only view of ZeroMQ's buffer) or None; None when nothing
    is waiting and not `block`."""
    try:
        parts = sock.recv_multipart(0 if block else zmq.NOBLOCK, copy=False)
    except zmq.Again:
        return None
    msg, layout = decode(parts[0].bytes)
    if layout is None or len(parts) < 2:
        return msg, None
    dtype, shape = layout
    return msg, np.frombuffer(parts[1].buffer, dtype=np.dtype(dtype)).reshape(shape)


def drain(sock: zmq.Socket) -> list[Received]:
    """Everything waiting now, oldest first, so the caller can keep the newest and count the rest."""
    out = []
    while (msg := recv(sock, block=False)) is not None:
        out.append(msg)
    return out

