"""The inference stage: owns the engine and every target of every stream.

Each turn it takes all frames waiting, keeps the newest per stream (pipeline/selection.py says which
and counts the others as dropped), and runs preprocess -> infer -> postprocess as one batch over all
targets. Commands from the supervisor (add/remove targets and streams, pause) arrive between turns;
replies, new targets' init frames (so a restarted process can rebuild their templates) and current
boxes go back as events. The tracker and the link to the other stages are given to it, so a test
drives a stage in-process with a real Tracker and real sockets."""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from siammask.api import load_tracker
from siammask.errors import UserError, described
from siammask.threads import set_inference_spinning, set_inference_threads
from siammask.tracker import TargetState, Tracker, TrackResult, start_result

from .config import ModelConfig
from .exits import FATAL
from .messages import (FOUND, LOST, AddStream, AddTarget, Box, Boxes, Command, Event, FrameHeader, MetricsSnapshot,
                       Ready, Received, RemoveStream, RemoveTarget, Reply, Result, SetPaused, StreamEnd, TargetAdded,
                       TargetChanged, TargetFailed)
from .metrics import DROPPED, LOST_TARGETS, QUEUE_DEPTH, REACQUIRED, SNAPSHOT_BYTES, own_files, remove_own_files
from .postprocess import record
from .process import StopFlag, log
from .selection import Gate, Pick, select
from .transport import LinkSpec, StageLink, ZmqStageLink

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
class StageSpec:
    """What an inference stage starts with: the registry's copy, and how it publishes."""

    streams: tuple[AddStream, ...]
    seeds: tuple[TargetSeed, ...]
    generation: int                        # commands for an earlier process are ignored
    send_frames: bool                      # the sink draws (video, preview): send it the pixels too
    delay_ms: float = 0.0
    metrics_every_s: float = 0.0           # > 0: send the metrics files this often (metrics.own_files);
                                           # 0: the supervisor reads them where they are


@dataclass(frozen=True)
class InferenceSpec:
    """What a new inference process gets."""

    model: ModelConfig
    stage: StageSpec
    link: LinkSpec


@dataclass
class LiveStream:
    paused: bool
    pending: dict[int, Box]
    slot: int                              # where the sink keeps the stream's last frame (see sink.Accounts)
    registration: int                      # tells this stream from an earlier one in the same slot
    targets: dict[int, TargetState] = field(default_factory=dict)
    last: Received | None = None           # newest frame seen: where added targets start
    dropped: dict[str, int] = field(default_factory=lambda: dict(NO_DROPS))
    paused_frames: int = 0


@dataclass
class Item:
    """One frame of one stream to process this turn."""

    pick: Pick
    header: FrameHeader
    frame: np.ndarray
    stamps: dict[str, float]
    started: dict[int, TrackResult] = field(default_factory=dict)
    results: dict[int, TrackResult] = field(default_factory=dict)
    changes: dict[int, str] = field(default_factory=dict)   # target -> LOST or FOUND on this frame


def restore(tracker: Tracker, seed: TargetSeed) -> TargetState:
    """Template, presence memory and look-alikes from the init frame and box, position and size from
    the last known box; it starts tracking there, and is found lost again if it is still out of view.
    Raises UserError as start_target does."""
    state = start_target(tracker, seed.init_frame, seed.init_box)
    x, y, w, h = seed.box
    return dataclasses.replace(state, pos=np.array([x + w / 2, y + h / 2]), size=np.array([w, h], np.float64))


def start_target(tracker: Tracker, frame: np.ndarray, box: Box) -> TargetState:
    """A new target; whatever goes wrong starting it is that target's error (UserError), never the
    process's (the box passed siammask.validate, so this is a last guard, logged in full).

    Its look-alikes are searched now (~0.1 s on 2 cores): the worker's streams wait for that as the
    target is added (an operator's command between batches, initial boxes in their stream's first
    frame, a restarted worker's targets before it is ready), not at an unforeseen moment on a live
    target's first loss, where a failure would take the whole worker down on every restart."""
    try:
        return tracker.with_look_alikes(tracker.init(frame, [box])[0])
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - one target must not take every stream down
        log("inference", f"starting a target at {list(box)} failed: {type(exc).__name__}: {exc}")
        raise UserError(f"the tracker could not start from box {list(box)}: {type(exc).__name__}") from None


def change(was_lost: bool, result: TrackResult) -> str | None:
    """LOST on the frame a target is lost, FOUND on the frame it is re-acquired, else None."""
    if result.found:
        return FOUND
    return LOST if result.lost and not was_lost else None


class Outbox:
    """What an inference stage sends: each frame's result to the sink (with the drops it reports),
    the boxes and lost/found changes to the supervisor, and their metrics."""

    def __init__(self, link: StageLink, generation: int, send_frames: bool) -> None:
        self.link, self.generation, self.send_frames = link, generation, send_frames

    def event(self, kind: type[Event], pixels: np.ndarray | None = None, block: bool = True, **fields) -> None:
        event = kind(generation=self.generation, **fields)
        if not self.link.event(event, pixels, block=block) and block:
            log("inference", f"the supervisor did not take event '{kind.__name__}'")

    def publish(self, item: Item, live: LiveStream) -> None:
        stream = item.pick.stream
        live.dropped["inference"] += item.pick.skipped
        live.dropped["capture"] += item.pick.capture_drops
        results = {**item.started, **item.results}
        frame_id = item.header.frame
        item.stamps["post"] = time.time()
        out = Result(stream, frame_id, item.header.fps, item.stamps, item.frame.shape[1], item.frame.shape[0],
                     dict(live.dropped), live.paused_frames,
                     tuple(record(frame_id, tid, results[tid]) for tid in sorted(results)),
                     live.slot, live.registration, self.generation, item.header.run)
        if self.link.result(out, item.frame if self.send_frames else None):
            live.dropped = dict(NO_DROPS)
            live.paused_frames = 0
        else:
            DROPPED.labels(stream, "sink").inc()
            live.dropped["sink"] += 1
        self.event(Boxes, block=False, stream=stream, frame=frame_id,
                   boxes=tuple((t, tuple(r.box)) for t, r in results.items()),
                   states=tuple((t, float(r.score), float(r.presence), bool(r.lost)) for t, r in results.items()))
        self.count_lost(stream, live)
        for tid, kind in item.changes.items():
            self._changed(item, tid, kind)

    def _changed(self, item: Item, target: int, kind: str) -> None:
        """A lost or found target: counted, then to the supervisor, then after the frame's result to
        the sink, which publishes it; so once a subscriber has it, the metrics count it and the
        supervisor has it queued. Both sends wait for room: these are rare and must not be lost."""
        r = item.results[target]
        event = TargetChanged(generation=self.generation, stream=item.pick.stream, target=target,
                              frame=item.header.frame, time=item.stamps["read"], change=kind,
                              box=tuple(float(v) for v in r.box), score=float(r.score),
                              presence=float(r.presence))
        if kind == FOUND:
            REACQUIRED.labels(item.pick.stream).inc()
        if not self.link.event(event):
            log("inference", "the supervisor did not take event 'TargetChanged'")
        if not self.link.result(event, block=True):
            log("inference", f"the sink did not take the '{kind}' event of target {target} on stream "
                             f"'{item.pick.stream}'")

    @staticmethod
    def count_lost(stream: str, live: LiveStream) -> None:
        LOST_TARGETS.labels(stream).set(sum(state.lost for state in live.targets.values()))


class InferenceStage:
    """Every target of every stream this process runs: frames in turns, commands between them
    (what goes out: Outbox)."""

    def __init__(self, tracker: Tracker, link: StageLink, spec: StageSpec, stop: Callable[[], bool]) -> None:
        self.tracker, self.link, self.spec, self.stop = tracker, link, spec, stop
        self.generation = spec.generation
        self.out = Outbox(link, spec.generation, spec.send_frames)
        self.streams: dict[str, LiveStream] = {}
        for stream in spec.streams:
            self._add_stream(stream)
        for seed in spec.seeds:
            if seed.stream in self.streams:
                self._restore(seed)
        self._handlers: dict[type, Callable] = {RemoveStream: self._remove_stream, SetPaused: self._set_paused,
                                                RemoveTarget: self._remove_target, AddTarget: self._add_target}

    def _restore(self, seed: TargetSeed) -> None:
        """A target of the process before this one; one that cannot start again is reported and
        dropped (the supervisor forgets it), so it cannot fail every later restart too."""
        try:
            self.streams[seed.stream].targets[seed.target] = restore(self.tracker, seed)
        except UserError as exc:
            self.out.event(TargetFailed, stream=seed.stream, target=seed.target, error=str(exc),
                           registration=self.streams[seed.stream].registration)

    def run(self) -> None:
        """Announce readiness, then turn until stopped; finish the frames the stopped captures sent."""
        self.out.event(Ready)
        every = self.spec.metrics_every_s
        next_metrics = time.monotonic() + every
        while not self.stop():
            self.step(100)
            if every and time.monotonic() >= next_metrics:
                self._send_metrics()
                next_metrics = time.monotonic() + every
        final = self.link.frames(wait_ms=200)
        if final:
            self._turn(final)
        self.link.close()  # no last snapshot: a stopping or dying worker's is never read (pipeline/README.md)

    def _send_metrics(self) -> None:
        """Never blocks: a full queue drops the snapshot, and the next one holds the same and more."""
        files, data = own_files()
        if data.size <= SNAPSHOT_BYTES:
            self.out.event(MetricsSnapshot, data, block=False, files=files)

    def step(self, timeout_ms: int) -> None:
        """One turn: the commands waiting, then the frames waiting (up to `timeout_ms` for anything)."""
        if not self.link.wait(timeout_ms):
            return
        for cmd in self.link.commands():
            if cmd.generation == self.generation:
                self._command(cmd)
        received = self.link.frames()
        if received:
            self._turn(received)

    # --- frames ---------------------------------------------------------------------------------

    def _turn(self, received: list[Received]) -> None:
        """Newest frame per stream; before it, an older first frame when initial boxes wait for it."""
        received_at = time.time()
        chosen = select([msg for msg, _ in received],
                        {sid: Gate(live.paused, bool(live.pending)) for sid, live in self.streams.items()})
        for stream_id, count in chosen.waiting.items():
            QUEUE_DEPTH.labels(stream_id).set(count)
            self.streams[stream_id].last = received[chosen.latest[stream_id]]
            if dropped := chosen.dropped(stream_id):
                DROPPED.labels(stream_id, "inference").inc(dropped)
        for stream_id, (frames, capture_drops) in chosen.paused.items():
            live = self.streams[stream_id]
            live.paused_frames += frames
            live.dropped["capture"] += capture_drops
        for picks in (chosen.firsts, chosen.newest):
            if picks:
                self._process([Item(p, *received[p.index], {**received[p.index][0].t, "received": received_at})
                               for p in picks])
        for stream_id in chosen.ended:  # after its last results, so the sink closes its video complete
            self.link.result(StreamEnd(stream_id), block=True)

    def _process(self, items: list[Item]) -> None:
        if self.spec.delay_ms:
            time.sleep(self.spec.delay_ms / 1000)
        started = time.time()
        for item in items:
            self._start_pending(item)
        jobs = [(item, tid, state) for item in items
                for tid, state in self.streams[item.pick.stream].targets.items() if tid not in item.started]
        batch = self.tracker.search_batch([(item.frame, state) for item, _, state in jobs]) if jobs else None
        pre = time.time()
        picks = self.tracker.infer_batch(batch, [s for _, _, s in jobs]) if jobs else None
        inferred = time.time()
        for i, (item, tid, state) in enumerate(jobs):
            new_state, result = self.tracker.finish(item.frame, state, picks[i])
            self.streams[item.pick.stream].targets[tid] = new_state
            item.results[tid] = result
            if kind := change(state.lost, result):
                item.changes[tid] = kind
        for item in items:
            item.stamps.update(start=started, pre=pre, infer=inferred)
            self.out.publish(item, self.streams[item.pick.stream])

    def _start_pending(self, item: Item) -> None:
        """Initial boxes start on this frame; a box the tracker cannot start from is reported and dropped."""
        stream = item.pick.stream
        live = self.streams[stream]
        for tid, box in list(live.pending.items()):
            del live.pending[tid]
            try:
                state = start_target(self.tracker, item.frame, box)
            except UserError as exc:
                self.out.event(TargetFailed, stream=stream, target=tid, error=str(exc), registration=live.registration)
                continue
            live.targets[tid] = state
            item.started[tid] = start_result(state)
            self.out.event(TargetAdded, item.frame, stream=stream, target=tid, box=tuple(box), frame=item.header.frame)

    # --- commands -------------------------------------------------------------------------------

    def _command(self, cmd: Command) -> None:
        """Dispatch by type; a command for a stream this process does not run is answered, if it
        waits for an answer, and changes nothing."""
        if isinstance(cmd, AddStream):
            self._add_stream(cmd)
        elif cmd.stream in self.streams:
            self._handlers[type(cmd)](cmd, self.streams[cmd.stream])
        elif hasattr(cmd, "req"):
            self.out.event(Reply, req=cmd.req, error=f"stream '{cmd.stream}' is not running")

    def _add_stream(self, cmd: AddStream) -> None:
        if cmd.stream not in self.streams:
            self.streams[cmd.stream] = LiveStream(cmd.paused, dict(cmd.pending), cmd.slot,
                                                  cmd.registration)
            self.link.follow(cmd.stream, cmd.endpoint)

    def _remove_stream(self, cmd: RemoveStream, live: LiveStream) -> None:
        self.link.unfollow(cmd.stream)
        del self.streams[cmd.stream]
        LOST_TARGETS.labels(cmd.stream).set(0)  # a stream added again with this id starts with none lost
        self.link.result(StreamEnd(cmd.stream), block=True)

    def _set_paused(self, cmd: SetPaused, live: LiveStream) -> None:
        """Confirmed once in force: from the reply on, no frame of a paused stream is processed."""
        live.paused = cmd.paused
        self.out.event(Reply, req=cmd.req, stream=cmd.stream)

    def _remove_target(self, cmd: RemoveTarget, live: LiveStream) -> None:
        live.targets.pop(cmd.target, None)
        live.pending.pop(cmd.target, None)
        self.out.count_lost(cmd.stream, live)

    def _add_target(self, cmd: AddTarget, live: LiveStream) -> None:
        """Start on the newest frame already seen, so the reply tells at once whether the box fits."""
        if live.last is None:
            self.out.event(Reply, req=cmd.req,
                        error=f"stream '{cmd.stream}' has not delivered a frame yet; try again when it is live")
            return
        header, frame = live.last
        try:
            state = start_target(self.tracker, frame, cmd.box)
        except UserError as exc:
            self.out.event(Reply, req=cmd.req, error=str(exc))
            return
        live.targets[cmd.target] = state
        self.out.event(Reply, frame, req=cmd.req, box=cmd.box, target=cmd.target, stream=cmd.stream, frame=header.frame)


def stage_tracker(m: ModelConfig) -> Tracker:
    """The config's model section -> the tracker, through the load_tracker the commands use (one
    engine choice for `track` and `serve`), warmed up: a live stream must not stall on a graph that
    opens when first used."""
    tracker = load_tracker(m.weights, variant=m.variant, hp=m.hp, engine=m.engine, device=m.device,
                           precision=m.precision, redetect=m.redetect)
    try:
        tracker.warm_up()
    except UserError:
        raise
    except Exception as exc:  # e.g. crop sizes in the hp file that the model cannot run: no target ever could
        raise UserError(f"the model cannot track with these settings ({described(exc)}); "
                        "check exemplar_size and instance_size in the hyper-parameters") from None
    return tracker


def run_inference(spec: InferenceSpec) -> None:
    """Process entry point: load the model, open the ZeroMQ link, run the stage."""
    stop = StopFlag()
    m = spec.model
    sends = spec.stage.metrics_every_s > 0  # its metrics folder is its own: see remove_own_files
    if sends:
        remove_own_files()  # before the first metric is written
    try:
        set_inference_threads(m.threads)  # every back end's threads (siammask.threads)
        set_inference_spinning(m.spin)  # capture processes decode on the same cores
        try:
            tracker = stage_tracker(m)
            link = ZmqStageLink(spec.link)
        except UserError as exc:
            log("inference", str(exc))
            raise SystemExit(FATAL) from None
        InferenceStage(tracker, link, spec.stage, stop.__bool__).run()
    finally:
        if sends:
            remove_own_files()
