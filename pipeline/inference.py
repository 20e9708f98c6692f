"""The inference stage: owns the engine and every target of every stream.

Each turn it takes all frames waiting, keeps the newest per stream (the others are counted as
dropped), and runs preprocess -> infer -> postprocess as one batch over all targets. Commands from
the supervisor (add/remove targets and streams, pause) arrive between turns; replies, new targets'
init frames (so a restarted process can rebuild their templates) and current boxes go back as events.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zmq

from siammask.api import load_tracker
from siammask.errors import UserError
from siammask.tracker import TargetState, Tracker, TrackResult, start_result

from . import messages
from .config import CurveConfig, ModelConfig
from .metrics import DROPPED, QUEUE_DEPTH
from .postprocess import record
from .process import StopFlag, log
from .security import Security, load_keys

Box = tuple[float, float, float, float]
REFILL_WAIT_MS = 2  # how long a full queue gets to show what is behind it
NO_DROPS = {"capture": 0, "inference": 0, "sink": 0}  # per stage, since the stream's last result


@dataclass(frozen=True)
class TargetSeed:
    """What restores a target in a new inference process: its template source and where it was."""

    stream: str
    target: int
    init_box: Box
    init_frame: np.ndarray
    box: Box


@dataclass(frozen=True)
class StreamSpec:
    id: str
    endpoint: str
    pending: tuple[tuple[int, Box], ...]   # targets to start on the stream's next frame
    paused: bool
    slot: int                              # where the sink keeps the stream's last frame (see sink.Accounts)
    registration: int                      # tells this stream from an earlier one in the same slot


@dataclass(frozen=True)
class InferenceSpec:
    model: ModelConfig
    streams: tuple[StreamSpec, ...]
    seeds: tuple[TargetSeed, ...]
    generation: int                        # commands for an earlier process are ignored
    cmd_endpoint: str
    events_endpoint: str
    results_endpoint: str
    queue_size: int
    results_hwm: int                       # results queued for the sink: at least one full batch
    send_frames: bool                      # the sink draws (video, preview): send it the pixels too
    delay_ms: float
    curve: CurveConfig | None


@dataclass
class LiveStream:
    endpoint: str
    paused: bool
    pending: dict[int, Box]
    slot: int
    registration: int
    targets: dict[int, TargetState] = field(default_factory=dict)
    last: tuple[dict, zmq.Frame] | None = None        # newest frame seen: where added targets start
    dropped: dict[str, int] = field(default_factory=lambda: dict(NO_DROPS))
    paused_frames: int = 0


@dataclass
class Item:
    """One frame of one stream to process this turn."""

    stream: str
    header: dict
    part: zmq.Frame
    frame: np.ndarray
    skipped: int = 0  # older frames of the stream left out for this one: reported with it, not before
    capture: int = 0  # frames the capture lost before this one (and before the skipped ones)
    started: dict[int, TrackResult] = field(default_factory=dict)
    results: dict[int, TrackResult] = field(default_factory=dict)


def _item(stream: str, frames: list[tuple[dict, zmq.Frame]]) -> Item:
    """The last of `frames` to process; the others, and what capture lost before them, as its drops."""
    header, part = frames[-1]
    return Item(stream, header, part, messages.as_array(header, part), skipped=len(frames) - 1,
                capture=sum(h["dropped"]["capture"] for h, _ in frames))


def restore(tracker: Tracker, seed: TargetSeed) -> TargetState:
    """Template from the init frame and box, position and size from the last known box."""
    state = tracker.init(seed.init_frame, [seed.init_box])[0]
    x, y, w, h = seed.box
    return TargetState(np.array([x + w / 2, y + h / 2]), np.array([w, h]), state.avg_color, state.features)


class InferenceStage:
    def __init__(self, spec: InferenceSpec, stop: StopFlag) -> None:
        self.spec, self.stop = spec, stop
        if spec.model.threads and spec.model.engine.startswith("torch"):  # torch and torch-compile
            import torch
            torch.set_num_threads(spec.model.threads)
        m = spec.model
        self.tracker = load_tracker(m.weights, variant=m.variant, hp=m.hp, engine=m.engine, device=m.device,
                                    precision=m.precision)
        self.streams = {s.id: LiveStream(s.endpoint, s.paused, dict(s.pending), s.slot, s.registration)
                        for s in spec.streams}
        for seed in spec.seeds:
            if seed.stream in self.streams:
                self.streams[seed.stream].targets[seed.target] = restore(self.tracker, seed)
        self.ctx = zmq.Context()
        self.security = Security(self.ctx, load_keys(spec.curve) if spec.curve else None)
        self.frames = self._socket(zmq.PULL, rcvhwm=spec.queue_size)
        for s in self.streams.values():
            self.security.connect(self.frames, s.endpoint)
        self.commands = self._socket(zmq.PULL)
        self.security.bind(self.commands, spec.cmd_endpoint)  # bound here: the supervisor's commands wait for each new process
        self.events = self._socket(zmq.PUSH, sndtimeo=2000)
        self.security.connect(self.events, spec.events_endpoint)
        self.results = self._socket(zmq.PUSH, sndhwm=spec.results_hwm, sndtimeo=2000)
        self.security.connect(self.results, spec.results_endpoint)

    def _socket(self, kind: int, **options: int) -> zmq.Socket:
        sock = self.ctx.socket(kind)
        sock.linger = 2000  # results still queued at shutdown reach the sink
        for name, value in options.items():
            setattr(sock, name, value)
        return sock

    def run(self) -> None:
        messages.send(self.events, {"event": "ready", "generation": self.spec.generation}, block=True)
        poller = zmq.Poller()
        poller.register(self.frames, zmq.POLLIN)
        poller.register(self.commands, zmq.POLLIN)
        while not self.stop:
            ready = dict(poller.poll(100))
            if self.commands in ready:
                for header, part in messages.drain(self.commands):
                    if header.get("generation") == self.spec.generation:
                        self._command(header)
            if self.frames in ready:
                self._turn(self._newest_frames())
        if self.frames.poll(200):  # the captures have stopped: finish what they sent
            self._turn(messages.drain(self.frames))
        for sock in (self.frames, self.commands, self.events, self.results):
            sock.close()
        self.security.close()
        self.ctx.term()

    # --- frames ---------------------------------------------------------------------------------

    def _newest_frames(self) -> list[tuple[dict, zmq.Frame | None]]:
        """All frames waiting. A full queue means older frames may still sit in socket buffers behind
        it: keep taking while ZeroMQ's I/O thread brings more, so the newest one really is the newest."""
        received = messages.drain(self.frames)
        batch = received
        while len(batch) >= self.spec.queue_size and self.frames.poll(REFILL_WAIT_MS):
            batch = messages.drain(self.frames)
            received += batch
        return received

    def _turn(self, received: list[tuple[dict, zmq.Frame | None]]) -> None:
        """Newest frame per stream; before it, an older first frame when initial boxes wait for it."""
        received_at = time.time()
        per_stream: dict[str, list[tuple[dict, zmq.Frame | None]]] = {}
        for header, part in received:
            per_stream.setdefault(header["stream"], []).append((header, part))
        firsts: list[Item] = []
        newest: list[Item] = []
        ended = []
        for stream_id, msgs in per_stream.items():
            live = self.streams.get(stream_id)
            if live is None:
                continue  # removed while its frames were on the way
            if msgs[-1][0].get("end"):
                ended.append(stream_id)
            frames = [(h, p) for h, p in msgs if p is not None]
            if not frames:
                continue
            QUEUE_DEPTH.labels(stream_id).set(len(frames))
            for h, _ in frames:
                h["t"]["received"] = received_at
            live.last = frames[-1]
            if live.paused:
                live.paused_frames += len(frames)
                live.dropped["capture"] += sum(h["dropped"]["capture"] for h, _ in frames)
                continue
            # Each message reports the frames lost just before it, so a first frame processed ahead
            # of the newest one takes the drops up to it, and the newest one the rest.
            at = next((i for i in range(len(frames) - 2, -1, -1) if frames[i][0].get("first")), None) \
                if live.pending else None
            if at is not None:
                firsts.append(_item(stream_id, frames[:at + 1]))
            newest.append(_item(stream_id, frames[at + 1 if at is not None else 0:]))
            skipped = len(frames) - 1 - (at is not None)
            if skipped:
                DROPPED.labels(stream_id, "inference").inc(skipped)
        for items in (firsts, newest):
            if items:
                self._process(items)
        for stream_id in ended:  # after its last results, so the sink closes its video complete
            messages.send(self.results, {"stream": stream_id, "end": True}, block=True)

    def _process(self, items: list[Item]) -> None:
        if self.spec.delay_ms:
            time.sleep(self.spec.delay_ms / 1000)
        started = time.time()
        for item in items:
            self._start_pending(item)
        jobs = [(item, tid, state) for item in items
                for tid, state in self.streams[item.stream].targets.items() if tid not in item.started]
        batch = self.tracker.search_batch([(item.frame, state) for item, _, state in jobs]) if jobs else None
        pre = time.time()
        picks = self.tracker.infer_batch(batch, [s for _, _, s in jobs]) if jobs else None
        inferred = time.time()
        for i, (item, tid, state) in enumerate(jobs):
            new_state, result = self.tracker.finish(item.frame, state, batch.sides[i], picks.states[i],
                                                    picks.pos_yx[i], picks.scores[i], picks.probs[i])
            self.streams[item.stream].targets[tid] = new_state
            item.results[tid] = result
        for item in items:
            item.header["t"].update(start=started, pre=pre, infer=inferred)
            self._publish(item)

    def _start_pending(self, item: Item) -> None:
        """Initial boxes start on this frame; a box the tracker cannot start from is reported and dropped."""
        live = self.streams[item.stream]
        for tid, box in list(live.pending.items()):
            del live.pending[tid]
            try:
                state = self._init(item.frame, box)
            except UserError as exc:
                self._event({"event": "target_failed", "stream": item.stream, "target": tid, "error": str(exc)})
                continue
            live.targets[tid] = state
            item.started[tid] = start_result(state)
            self._event({"event": "target_added", "stream": item.stream, "target": tid, "box": list(box),
                         "frame": item.header["frame"]}, item.frame)

    def _publish(self, item: Item) -> None:
        live = self.streams[item.stream]
        live.dropped["inference"] += item.skipped
        live.dropped["capture"] += item.capture
        h = item.header
        results = {**item.started, **item.results}
        records = [record(h["frame"], tid, results[tid]) for tid in sorted(results)]
        h["t"]["post"] = time.time()
        out = {"stream": item.stream, "frame": h["frame"], "fps": h.get("fps"), "t": h["t"],
               "width": item.frame.shape[1], "height": item.frame.shape[0],
               "dropped": dict(live.dropped), "paused_frames": live.paused_frames, "targets": records,
               "slot": live.slot, "registration": live.registration, "generation": self.spec.generation,
               "capture_run": h.get("run", 0)}
        if self.spec.send_frames:
            out.update(dtype=h["dtype"], shape=h["shape"])
        if messages.send(self.results, out, item.part if self.spec.send_frames else None):
            live.dropped = dict(NO_DROPS)
            live.paused_frames = 0
        else:
            DROPPED.labels(item.stream, "sink").inc()
            live.dropped["sink"] += 1
        self._event({"event": "boxes", "stream": item.stream, "frame": h["frame"],
                     "boxes": {str(t): list(r.box) for t, r in results.items()}}, block=False)

    # --- commands -------------------------------------------------------------------------------

    def _command(self, cmd: dict[str, Any]) -> None:
        name, stream_id = cmd["cmd"], cmd["stream"]
        live = self.streams.get(stream_id)
        if name == "add_stream":
            if live is None:
                self.streams[stream_id] = LiveStream(cmd["endpoint"], cmd["paused"],
                                                     {int(t): tuple(b) for t, b in cmd["pending"]},
                                                     cmd["slot"], cmd["registration"])
                self.security.connect(self.frames, cmd["endpoint"])
        elif live is None:
            if "req" in cmd:
                self._reply(cmd, error=f"stream '{stream_id}' is not running")
        elif name == "remove_stream":
            self.frames.disconnect(live.endpoint)
            del self.streams[stream_id]
            messages.send(self.results, {"stream": stream_id, "end": True}, block=True)
        elif name in ("pause", "resume"):
            live.paused = name == "pause"
        elif name == "remove_target":
            live.targets.pop(cmd["target"], None)
            live.pending.pop(cmd["target"], None)
        elif name == "add_target":
            self._add_target(cmd, live)

    def _add_target(self, cmd: dict[str, Any], live: LiveStream) -> None:
        """Start on the newest frame already seen, so the reply tells at once whether the box fits."""
        if live.last is None:
            self._reply(cmd, error=f"stream '{cmd['stream']}' has not delivered a frame yet; try again when it is live")
            return
        header, part = live.last
        frame = messages.as_array(header, part)
        try:
            state = self._init(frame, cmd["box"])
        except UserError as exc:
            self._reply(cmd, error=str(exc))
            return
        live.targets[cmd["target"]] = state
        self._reply(cmd, frame=frame, extra={"box": list(cmd["box"]), "target": cmd["target"],
                                             "stream": cmd["stream"], "frame": header["frame"]})

    def _init(self, frame: np.ndarray, box: Box) -> TargetState:
        """A new target; whatever goes wrong starting it is that target's error, never the process's
        (the box passed siammask.validate, so this is a last guard, logged in full)."""
        try:
            return self.tracker.init(frame, [box])[0]
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - one target must not take every stream down
            log("inference", f"starting a target at {list(box)} failed: {type(exc).__name__}: {exc}")
            raise UserError(f"the tracker could not start from box {list(box)}: {type(exc).__name__}") from None

    def _reply(self, cmd: dict[str, Any], error: str | None = None, frame: np.ndarray | None = None,
               extra: dict | None = None) -> None:
        self._event({"event": "reply", "req": cmd["req"], "ok": error is None, "error": error, **(extra or {})},
                    frame)

    def _event(self, header: dict[str, Any], frame: np.ndarray | None = None, block: bool = True) -> None:
        header["generation"] = self.spec.generation
        if not messages.send(self.events, header, frame, block=block) and block:
            log("inference", f"the supervisor did not take event '{header['event']}'")


def run_inference(spec: InferenceSpec) -> None:
    """Process entry point."""
    stop = StopFlag()
    try:
        stage = InferenceStage(spec, stop)
    except UserError as exc:
        log("inference", str(exc))
        raise SystemExit(2) from None
    stage.run()
