"""The sink stage: turns each result into the published JSON message (with latency and per-stage
times), then writes the optional JSON-lines file, annotated videos and live preview.

A restarted sink never truncates: it appends to the JSON-lines file and starts a new numbered part
of each video. Frames lost inside a stage that was killed (its queues and the frame it was working
on) cannot be counted by that stage; the sink counts them from the frame-id gap, by the stage that
restarted, so `dropped` still adds up to every gap (see `Accounts`)."""
from __future__ import annotations

import json
import socket
import time
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np
import zmq

from siammask.errors import UserError
from siammask.io.annotate import draw_target
from siammask.io.results import JsonlWriter, VideoWriter, decode_mask, finish_killed_parts, next_part

from . import messages
from .config import CurveConfig, OutputsConfig
from .endpoints import bound_endpoint
from .exits import FATAL
from .messages import Result, StreamEnd, TargetChanged
from .metrics import DROPPED, FRAMES, LATENCY_SECONDS, observe_stages
from .preview import PreviewServer, encode_jpeg
from .process import StopFlag, log
from .security import Security, load_keys

# (stage, from timestamp, to timestamp) in the order a frame passes them
STAGES = (("capture", "read", "sent"), ("to_inference", "sent", "received"), ("queue", "received", "start"),
          ("preprocess", "start", "pre"), ("infer", "pre", "infer"), ("postprocess", "infer", "post"),
          ("to_sink", "post", "sink"), ("publish", "sink", "published"))
PUBLISH_SNDBUF = 65536  # kernel bytes a slow subscriber may have queued: part of its worst-case lag


COUNTED = ("capture", "inference", "sink")  # the stages whose drops (with paused frames) make up a gap


@dataclass(frozen=True)
class SinkSpec:
    results_endpoint: str
    publish: str
    outputs: OutputsConfig
    preview_port: int | None
    queue_size: int
    batch: int                         # results one inference turn can send at once (max_streams): each
                                       # queue towards subscribers holds queue_size + batch messages
    curve: CurveConfig | None
    restart: int                       # earlier sink processes of this run: 0 writes files afresh
    console: str | None = None         # where the console takes annotated JPEGs (while someone watches)


class Accounts:
    """Per stream: the last frame published, kept in memory shared with the supervisor (so it outlives
    a killed sink), as (registration, frame) in the stream's slot. A gap larger than the drops a
    message reports is frames a killed stage had in flight; they are added to that stage's count:
    the sink's if this sink process is new to the stream, else the inference stage's if its
    generation changed, else the capture's if its run changed. A frame is recorded as published
    only once it is out (sent and written): a sink killed while handling it has not published it,
    and its gap is counted (in the message and in Prometheus) by the sink that publishes it."""

    def __init__(self, shared) -> None:
        self.shared = shared               # multiprocessing Array of int64: registration, last frame per slot
        self.seen: dict[str, tuple] = {}   # stream -> (inference generation, capture run) of its last message
        self.counted: tuple[str, int] | None = None  # (stage, frames) of the result being handled

    def count(self, result: Result) -> None:
        """Adds to `result.dropped` what its gap holds beyond the drops it reports."""
        stream, slot, frame = result.stream, result.slot, result.frame
        origin = (result.generation, result.capture_run)
        self.counted = None
        if self.shared[2 * slot] == result.registration:
            lost = frame - self.shared[2 * slot + 1] - 1 - result.paused_frames \
                - sum(result.dropped[k] for k in COUNTED)
            if lost > 0:
                stage = self._stage(stream, origin)
                if stage:
                    result.dropped[stage] += lost
                    self.counted = (stage, lost)
                else:
                    log("sink", f"stream '{stream}': {lost} frame(s) before {frame} lost without a restart")
        self.seen[stream] = origin

    def published(self, result: Result) -> None:
        self.shared[2 * result.slot], self.shared[2 * result.slot + 1] = result.registration, result.frame
        if self.counted:
            DROPPED.labels(result.stream, self.counted[0]).inc(self.counted[1])
            self.counted = None

    def _stage(self, stream: str, origin: tuple) -> str | None:
        before = self.seen.get(stream)
        if before is None:
            return "sink"
        if before[0] != origin[0]:
            return "inference"
        return "capture" if before[1] != origin[1] else None

    def end(self, stream: str) -> None:
        self.seen.pop(stream, None)


def message(result: Result, published: float, publish_drops: int) -> dict:
    """The public JSON for one processed frame; 'stream' comes first so subscribers can filter on
    the prefix '{"stream": "ID"'. `dropped` counts, per stage, the stream's frames lost since its
    previous message: capture + inference + sink + paused_frames is exactly the frame-id gap minus
    one for every subscriber; 'publish' counts messages some subscriber was too slow to take."""
    stamps = {**result.t, "published": published}
    return {"stream": result.stream, "frame": result.frame, "capture_ts": stamps["read"],
            "latency_ms": round((published - stamps["read"]) * 1000, 3),
            "stages_ms": observe_stages(stamps, STAGES),
            "dropped": {**result.dropped, "publish": publish_drops}, "paused_frames": result.paused_frames,
            "width": result.width, "height": result.height, "targets": list(result.targets)}


def event_message(event: TargetChanged) -> dict:
    """The public JSON of a target lost or found again, published right after its frame's message;
    'stream' first, like every message, so a stream's subscribers get its events too."""
    return {"stream": event.stream, "event": event.change, "target": event.target, "frame": event.frame,
            "time": event.time, "box": list(event.box), "score": event.score, "presence": event.presence}


def draw(frame: np.ndarray, targets: tuple[dict, ...]) -> np.ndarray:
    """The frame with every target drawn as `siammask track --output` draws it (a lost one differently)."""
    canvas = frame
    for t in targets:
        mask = decode_mask(t["mask"]) if t["mask"] else None
        canvas = draw_target(canvas, t["target"], t["polygon"], mask, t["score"], t["lost"])
    return canvas


class Sink:
    def __init__(self, spec: SinkSpec, stack: ExitStack, shared, publish_port, watching,
                 listener: socket.socket | None = None) -> None:
        self.spec = spec
        self.accounts = Accounts(shared)
        self.ctx = zmq.Context()
        self.security = Security(self.ctx, load_keys(spec.curve) if spec.curve else None)
        stack.callback(self.ctx.term)
        stack.callback(self.security.close)
        # Each socket is closed before ctx.term, from the moment it exists: a bind that fails (a busy
        # port) must end the process, not leave ctx.term waiting for an open socket.
        self.results = self.ctx.socket(zmq.PULL)
        stack.callback(self.results.close, linger=0)
        self.results.rcvhwm = spec.queue_size  # the inference side holds a full batch more
        self.security.bind(self.results, spec.results_endpoint, listener)  # tcp with CURVE in cluster mode
        self.publish = self.ctx.socket(zmq.XPUB)
        stack.callback(self.publish.close, linger=200)
        self.publish.sndhwm = spec.queue_size + spec.batch
        self.publish.sndbuf = PUBLISH_SNDBUF
        self.publish.setsockopt(zmq.XPUB_NODROP, 1)
        self.security.bind(self.publish, spec.publish)
        bound = bound_endpoint(self.publish)
        if spec.publish.endswith(":*"):  # a restart binds the same port again (see Stages._sink_spec)
            publish_port.value = int(bound.rsplit(":", 1)[1])
        log("sink", f"publishing results on {bound}")
        self.jsonl = stack.enter_context(JsonlWriter(spec.outputs.jsonl, append=spec.restart > 0)) \
            if spec.outputs.jsonl else None
        self.video_paths: set[str] = set()  # opened by this process: a second opening is a new part
        self.preview = PreviewServer(spec.preview_port) if spec.preview_port else None
        if self.preview:
            stack.callback(self.preview.close)
            log("sink", f"preview on http://127.0.0.1:{spec.preview_port}/")
        self.watching = watching
        self.watched = False                # whether the console had viewers at the last look
        self.preview_watched = False        # whether the preview had viewers at the last look
        self.kept: dict[str, tuple[np.ndarray, tuple]] = {}  # stream -> its newest frame and targets
        self.console = self.ctx.socket(zmq.PUSH) if spec.console else None
        if self.console:
            stack.callback(self.console.close, linger=0)
            # a console that does not keep up loses pictures, never holds results; room for one
            # picture of every stream, which a first viewer gets at once (see look)
            self.console.sndhwm = spec.batch + 2
            self.console.connect(spec.console)
        self.videos: dict[str, VideoWriter] = {}
        stack.callback(self.close_videos)
        self.publish_drops: dict[str, int] = {}

    def handle(self, result: Result | StreamEnd | TargetChanged, pixels: np.ndarray | None) -> None:
        stream = result.stream
        if isinstance(result, StreamEnd):
            self._end(stream)
            return
        if isinstance(result, TargetChanged):
            self._send(stream, json.dumps(event_message(result), allow_nan=False).encode())
            return
        result.t["sink"] = time.time()
        self.accounts.count(result)
        msg = message(result, time.time(), self.publish_drops.get(stream, 0))
        LATENCY_SECONDS.labels(stream).observe(msg["latency_ms"] / 1000)
        text = json.dumps(msg, allow_nan=False)  # encoded once, for subscribers and the JSON-lines file alike
        sent = self._send(stream, text.encode())  # sent and written back to back: a kill between the two
        if self.jsonl:                             # is the one moment their records can differ
            self.jsonl.write_line(text)
        self.accounts.published(result)
        if sent:
            self.publish_drops[stream] = 0  # this message reported them
        FRAMES.labels(stream, "publish").inc()
        if pixels is not None:
            self._draw(stream, result, pixels)

    def _send(self, stream: str, payload: bytes) -> bool:
        """Everyone with room gets the message; a subscriber too slow to take it loses it, counted
        (XPUB_NODROP makes a full subscriber visible as EAGAIN instead of a silent drop) until a
        frame's message reports the count. True when every subscriber took it."""
        while self.publish.poll(0):
            self.publish.recv()  # subscriptions: XPUB hands them to us; nothing to do with them
        try:
            self.publish.send(payload, zmq.NOBLOCK)
            return True
        except zmq.Again:
            DROPPED.labels(stream, "publish").inc()
            self.publish_drops[stream] = self.publish_drops.get(stream, 0) + 1
        self.publish.setsockopt(zmq.XPUB_NODROP, 0)  # deliver to the others; never hold them back
        try:
            self.publish.send(payload, zmq.NOBLOCK)
        finally:
            self.publish.setsockopt(zmq.XPUB_NODROP, 1)
        return False

    def _draw(self, stream: str, result: Result, frame: np.ndarray) -> None:
        want_video = self.spec.outputs.video is not None
        want_console = self.console is not None and self.watching.value > 0
        if self.console is not None or self.preview:
            self.kept[stream] = (frame, result.targets)
        if self.preview:
            self.preview.add_stream(stream)
        if not (want_video or want_console or (self.preview and self.preview.watched)):
            return
        canvas = draw(frame, result.targets)
        if want_video:
            self._video(stream, canvas, result.fps).write(canvas)
        self._show(stream, canvas, bool(self.preview and self.preview.watched), want_console)

    def look(self) -> None:
        """When the console's or the preview's first viewer arrives, the newest picture of every
        stream at once (a paused stream's too), drawn now: nothing was encoded while no one watched."""
        watched = self.console is not None and self.watching.value > 0
        preview_watched = bool(self.preview and self.preview.watched)
        console_new, preview_new = watched and not self.watched, preview_watched and not self.preview_watched
        if console_new or preview_new:
            for stream, (frame, targets) in self.kept.items():
                self._show(stream, draw(frame, targets), preview_new, console_new)
        self.watched, self.preview_watched = watched, preview_watched

    def _show(self, stream: str, canvas: np.ndarray, preview: bool, console: bool) -> None:
        """One JPEG per drawn frame, whoever watches it (the preview's and the console's viewers share it)."""
        if not (preview or console) or (jpeg := encode_jpeg(canvas)) is None:
            return
        if preview:
            self.preview.update(stream, jpeg)
        if console:
            try:
                self.console.send_multipart([stream.encode(), jpeg], zmq.NOBLOCK)
            except zmq.Again:
                pass  # the console has older pictures waiting: this one is not missed for long

    def _video(self, stream: str, canvas: np.ndarray, fps: float | None) -> VideoWriter:
        """The stream's video writer; a new part when this process has written the path before, or
        when a live source changed its frame size (a video holds one size)."""
        video = self.videos.get(stream)
        size = (canvas.shape[1], canvas.shape[0])
        if video is not None and video.size not in (None, size):
            log("sink", f"stream '{stream}': frames are now {size[0]}x{size[1]}, not {video.size[0]}x"
                        f"{video.size[1]}; its video goes on in a new part")
            video.release()
            video = None
        if video is None:
            path = self.spec.outputs.video.format(stream=stream)
            fresh = self.spec.restart == 0 and path not in self.video_paths
            if path not in self.video_paths and not fresh:  # parts a killed sink was writing
                finish_killed_parts(path)
            self.video_paths.add(path)
            video = self.videos[stream] = VideoWriter(path if fresh else next_part(path), fps=fps or 25.0)
        return video

    def close_videos(self) -> None:
        """Finish every video part; a write that failed at the very end is a UserError too."""
        while self.videos:
            self.videos.popitem()[1].release()

    def _end(self, stream: str) -> None:
        self.accounts.end(stream)
        self.kept.pop(stream, None)
        video = self.videos.pop(stream, None)
        if video:
            video.release()
        if self.preview:
            self.preview.remove_stream(stream)
        self._send(stream, json.dumps({"stream": stream, "end": True}).encode())


def run_sink(spec: SinkSpec, shared, publish_port, watching, listener: socket.socket | None = None) -> None:
    """Process entry point (`shared`: see Accounts; `publish_port`: see Stages._sink_spec;
    `watching`: console viewers, shared with the supervisor; `listener`: the socket holding the
    results endpoint's port, in cluster mode over tcp, see Launcher.listener); after
    SIGTERM it takes what is still queued, then closes every file.
    An output that cannot be written (disk full) stops it with exit status 2: restarting cannot help."""
    stop = StopFlag()
    with ExitStack() as stack:
        try:
            sink = Sink(spec, stack, shared, publish_port, watching, listener)
            while not stop:
                if sink.results.poll(100):
                    for result, pixels in messages.drain(sink.results):
                        sink.handle(result, pixels)
                sink.look()
            while sink.results.poll(300):  # the inference stage has stopped: take its last results
                for result, pixels in messages.drain(sink.results):
                    sink.handle(result, pixels)
            sink.close_videos()
        except UserError as exc:
            log("sink", str(exc))
            raise SystemExit(FATAL) from None
