"""The supervisor: starts the stage processes, restarts the ones that die (a new inference process
gets every target back from its init frame and box), answers `siammask ctl`, serves the metrics,
logs a summary line, and on SIGINT/SIGTERM stops the stages in flow order so every result already
computed is written.

It owns the registry of streams and targets; the inference process only ever holds a copy, built
from the registry when it starts and kept current by commands sent after that."""
from __future__ import annotations

import dataclasses
import itertools
import json
import multiprocessing
import signal
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import zmq

from siammask.errors import UserError

from .capture import ENDED, FAILED, STALLED, CaptureSpec
from .config import PipelineConfig, StreamConfig, control_endpoint, stream_from_dict
from .console.hub import EventLog
from .control import MAX_REQUEST_BYTES, no_stream, parse_request
from .endpoints import RunDir, bound_endpoint
from .httpserve import serve_metrics
from .inference import InferenceSpec, StageSpec, TargetSeed
from .launch import GENERATION_SPAN, SUPERVISOR_GENERATIONS, Launcher, LocalLauncher, StageProcess, fresh_generation
from .messages import (LOST, AddStream, AddTarget, Box, Boxes, Command, Ready, RemoveStream, RemoveTarget, Reply,
                       SetPaused, TargetAdded, TargetChanged, TargetFailed)
from .metrics import RESTARTS, StageMetrics, SummaryLine, TargetFigures
from .process import Backoff, log
from .security import Security, load_keys
from .sink import SinkSpec, run_sink
from .transport import LinkSpec, SupervisorLink, ZmqSupervisorLink

REQUEST_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
REQUESTS_PER_TURN = 100  # control requests handled before the loop looks after the stages again
FATAL = 2  # a stage's exit code for a mistake restarting cannot fix (bad weights, unwritable output)


@dataclass
class TargetRecord:
    init_box: Box
    init_frame: np.ndarray
    box: Box
    frame: int                                # the last frame it was tracked on (box and the rest: there)
    score: float = 1.0
    presence: float = 1.0
    lost: bool = False                        # the tracker believes it is out of view; box: where last seen

    def update(self, frame: int, box: Box, score: float, presence: float, lost: bool) -> None:
        self.frame, self.box, self.score, self.presence, self.lost = frame, box, score, presence, lost

    def listing(self, target: int) -> dict[str, Any]:
        """Its entry in `ctl list`."""
        return {"id": target, "box": list(self.box), "state": "lost" if self.lost else "tracking",
                "presence": self.presence, "score": self.score, "frame": self.frame}


@dataclass
class StreamRecord:
    config: StreamConfig
    endpoint: str
    counter: Any                              # shared frame counter: ids go on across capture restarts
    hold: Any                                 # shared flag: a paused file or folder stops reading
    pending: dict[int, Box]                   # boxes not yet started on a frame
    slot: int                                 # the stream's place in the shared last-frame table
    registration: int                         # unique per registered stream (ids may come back)
    targets: dict[int, TargetRecord] = field(default_factory=dict)
    paused: bool = False
    state: str = "running"                    # running, ended (file done) or failed (unreadable)
    next_target: int = 0


@dataclass
class Child:
    """A stage process and when to start it again."""

    stage: str                                # capture, inference or sink (the metrics label)
    start: Callable[[], StageProcess]
    process: StageProcess | None = None
    started: float = 0.0
    restart_at: float | None = None
    backoff: Backoff = field(default_factory=Backoff)


@dataclass
class PendingRequest:
    """A control request waiting for the inference stage: an added target (its answer depends on the
    stage), or a change the registry already holds (`reply`, given once the stage confirms it, or
    when the stage cannot: a new process starts with the change in its spec)."""

    envelope: list[bytes]
    deadline: float
    stream: str
    target: int | None = None
    reply: dict[str, Any] | None = None


class Supervisor:
    def __init__(self, cfg: PipelineConfig, run_dir: RunDir, launcher: Launcher | None = None) -> None:
        self.cfg, self.run_dir = cfg, run_dir
        self.launcher = launcher or LocalLauncher(run_dir)
        self.mp = multiprocessing.get_context("spawn")
        self.ctx = zmq.Context()
        self.security = Security(self.ctx, load_keys(cfg.curve) if cfg.curve else None)
        self.streams: dict[str, StreamRecord] = {}
        self.children: dict[str, Child] = {}
        self.requests: dict[int, PendingRequest] = {}
        self.request_ids = itertools.count(1)
        self.registrations = itertools.count(1)
        self.last_frames = self.mp.Array("q", [-1] * (2 * cfg.max_streams), lock=False)  # see sink.Accounts
        self.publish_port = self.mp.Value("i", 0, lock=False)  # the port the sink got for a publish port '*'
        self.sink_starts = 0
        self.generation = 0
        self.ready = False                    # the current inference process has loaded its model
        self.stopping = False
        self.exit_code = 0
        self.cmd_endpoint = self.launcher.endpoint("commands")
        self.events_endpoint = self.launcher.endpoint("events")
        self.results_endpoint = self.launcher.endpoint("results")
        self.control: zmq.Socket | None = None
        self.link: SupervisorLink | None = None
        self._on_event_type = {Ready: self._on_ready, Boxes: self._on_boxes, TargetAdded: self._on_target_added,
                               TargetFailed: self._on_target_failed, TargetChanged: self._on_target_changed,
                               Reply: self._on_reply}
        self.http = None
        self.events = EventLog()              # what the console shows; kept whether or not it runs
        self.console = None
        self.console_watching = self.mp.Value("i", 0, lock=False)  # the sink encodes pictures while > 0
        self.console_frames = run_dir.endpoint("console")
        self.metrics = StageMetrics(str(run_dir.sub("metrics")), lambda: tuple(self.streams))
        self.metrics.registry.register(TargetFigures(self._target_figures))
        for stream in cfg.streams:
            self._register(stream)

    # --- running --------------------------------------------------------------------------------

    def run(self) -> int:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        try:
            self._open()
            self._loop()
        finally:
            self._shutdown()
        return self.exit_code

    def _on_signal(self, signum: int, frame: object) -> None:
        self.stopping = True

    def _open(self) -> None:
        if self.cfg.metrics_port:
            try:
                self.http = serve_metrics(self.cfg.metrics_port, self.metrics.registry, self._down)
            except OSError as exc:
                raise UserError(f"cannot serve metrics on 127.0.0.1:{self.cfg.metrics_port}: {exc.strerror}; "
                                "pick another metrics_port") from None
            log("supervisor", f"metrics on http://127.0.0.1:{self.cfg.metrics_port}/metrics")
        if self.cfg.role == "capture":
            for stream_id in self.streams:
                self._start_capture(stream_id)
            return
        self.control = self.ctx.socket(zmq.ROUTER)
        self.control.linger = 0
        self.control.maxmsgsize = MAX_REQUEST_BYTES  # ZeroMQ drops a peer that sends more
        self.security.bind(self.control, control_endpoint(self.cfg))
        log("supervisor", f"control on {bound_endpoint(self.control)}")
        if self.cfg.console:
            from .console.link import CONTROL, Console  # the HTTP server and its files: only when asked for
            self.control.bind(CONTROL)  # the console's requests reach the same handlers as ctl's
            self.console = Console(self.cfg.console, self.ctx, self.events, self.metrics.registry,
                                   self.console_watching, self.console_frames)
        self.link = ZmqSupervisorLink(self.security, self.cmd_endpoint, self.events_endpoint)
        self.children["sink"] = Child("sink", lambda: self._spawn(run_sink, self._sink_spec(), self.last_frames,
                                                                  self.publish_port, self.console_watching))
        self.children["inference"] = Child("inference", self._spawn_inference)
        for child in self.children.values():
            self._start(child)

    def _loop(self) -> None:
        poller = zmq.Poller()
        for sock in (self.control, self.link and self.link.pollable):
            if sock is not None:
                poller.register(sock, zmq.POLLIN)
        summary = SummaryLine(self.metrics.registry) if self.cfg.log_interval_s else None
        next_summary = time.monotonic() + self.cfg.log_interval_s
        while not self.stopping:
            if poller.sockets:
                ready = dict(poller.poll(100))
            else:  # role capture: no sockets, only children to watch
                ready = {}
                time.sleep(0.1)
            # events first: requests of this turn are answered from a registry that has them
            if self.link is not None and (self.link.pollable is None or self.link.pollable in ready):
                for event, pixels in self.link.events():
                    if event.generation // GENERATION_SPAN == self.generation:  # else from a process since replaced
                        self._on_event_type[type(event)](event, pixels)
            if self.control in ready:
                for _ in range(REQUESTS_PER_TURN):
                    if not self.control.poll(0):
                        break
                    self._on_control(self.control.recv_multipart())
            self._watch_children()
            self._expire_requests()
            if summary and time.monotonic() >= next_summary:
                log("summary", summary.line({sid for sid, rec in self.streams.items() if rec.paused}))
                next_summary += self.cfg.log_interval_s
            if self.streams and all(s.state != "running" for s in self.streams.values()):
                log("supervisor", "every stream has ended; stopping")
                if all(s.state == "failed" for s in self.streams.values()):
                    self.exit_code = FATAL
                break

    # --- stage processes ------------------------------------------------------------------------

    def _spawn(self, target: Callable, *args: Any) -> StageProcess:
        return self.launcher.spawn(target, args)

    def _spawn_inference(self) -> StageProcess:
        self.generation = fresh_generation({self.generation}, SUPERVISOR_GENERATIONS)
        self.ready = False
        return self.launcher.inference(self._inference_spec)

    def _start(self, child: Child) -> None:
        child.process, child.started, child.restart_at = child.start(), time.monotonic(), None

    def _down(self) -> list[str]:
        """The stages not running now (waiting to be restarted, or an inference process still loading
        its model), for /healthz; read from the metrics server's thread (a copy of the table)."""
        down = [name for name, child in list(self.children.items()) if child.process is None]
        if "inference" in self.children and "inference" not in down and not self.ready:
            down.append("inference")
        return down

    def _start_capture(self, stream_id: str) -> None:
        rec = self.streams[stream_id]
        if rec.config.remote or _capture(stream_id) in self.children:
            return
        spec = CaptureSpec(rec.config, rec.endpoint, self.cfg.queue_size, self.cfg.open_timeout_s,
                           self.cfg.read_timeout_s, self.cfg.curve)
        runs = itertools.count()
        child = Child("capture", lambda: self._spawn_capture(rec, dataclasses.replace(spec, run=next(runs))))
        self.children[_capture(stream_id)] = child
        self._start(child)

    def _spawn_capture(self, rec: StreamRecord, spec: CaptureSpec) -> StageProcess:
        """Frame ids go on from the last one published: a capture on another node (cluster mode)
        cannot share the counter, so it starts from the sink's last frame of the stream."""
        if self.last_frames[2 * rec.slot] == rec.registration:
            rec.counter.value = max(rec.counter.value, self.last_frames[2 * rec.slot + 1] + 1)
        return self.launcher.spawn_capture(spec, rec.counter, rec.hold)

    def _watch_children(self) -> None:
        now = time.monotonic()
        for name, child in list(self.children.items()):
            if child.process is None:
                if now >= child.restart_at:
                    self._start(child)
                continue
            code = child.process.exitcode
            if code is None:
                continue
            if child.process.pid is not None:
                self.metrics.process_died(child.process.pid)
            child.process = None
            if child.stage == "capture":
                self._capture_exited(name, child, code, now)
            elif code == FATAL:
                log("supervisor", f"the {child.stage} stage cannot run (see above); stopping")
                self.exit_code = FATAL
                self.stopping = True
            else:
                self._schedule_restart(name, child, code, now)

    def _capture_exited(self, name: str, child: Child, code: int, now: float) -> None:
        stream_id = name.split(" ", 1)[1]
        rec = self.streams[stream_id]
        if code in (ENDED, FAILED):
            rec.state = "ended" if code == ENDED else "failed"
            self.events.add(f"stream_{rec.state}", stream=stream_id)
            del self.children[name]
            log("supervisor", f"stream '{stream_id}' {rec.state}")
        else:
            self._schedule_restart(name, child, code, now)

    def _schedule_restart(self, name: str, child: Child, code: int, now: float) -> None:
        why = "stalled" if child.stage == "capture" and code == STALLED else (
            f"was killed by signal {-code}" if code < 0 else f"exited with status {code}")
        wait = child.backoff.next(now - child.started)
        child.restart_at = now + wait
        RESTARTS.labels(child.stage).inc()
        self.events.add("restarted", stage=name, why=why, wait_s=wait)
        if child.stage == "inference":
            self.ready = False
            for req, pending in list(self.requests.items()):
                self._answer(req, pending.reply or {
                    "ok": False, "error": "the inference process stopped while starting this target "
                                          "(see the serve log); the target was not added"})
        targets = sum(len(s.targets) for s in self.streams.values())
        log("supervisor", f"{name} {why}; restarting in {wait:g} s"
            + (f" with {targets} target(s)" if child.stage == "inference" else ""))

    def _inference_spec(self) -> InferenceSpec:
        cfg = self.cfg
        streams = tuple(self._add_stream_command(sid) for sid in self.streams)
        seeds = tuple(TargetSeed(sid, tid, t.init_box, t.init_frame, t.box)
                      for sid, rec in self.streams.items() for tid, t in rec.targets.items())
        stage = StageSpec(streams, seeds, self.generation * GENERATION_SPAN,
                          bool(cfg.outputs.video or cfg.preview_port or cfg.console),
                          cfg.inference_delay_ms)
        link = LinkSpec(self.cmd_endpoint, self.events_endpoint, self.results_endpoint, cfg.queue_size,
                        cfg.queue_size + cfg.max_streams, cfg.curve)
        return InferenceSpec(cfg.model, stage, link)

    def _add_stream_command(self, stream_id: str) -> AddStream:
        rec = self.streams[stream_id]
        return AddStream(stream=stream_id, endpoint=rec.endpoint, paused=rec.paused,
                         pending=tuple((t, tuple(b)) for t, b in rec.pending.items()), slot=rec.slot,
                         registration=rec.registration)

    def _sink_spec(self) -> SinkSpec:
        cfg = self.cfg
        self.sink_starts += 1
        publish = cfg.publish
        if self.publish_port.value:  # a restarted sink binds the port the first one was given for '*'
            publish = publish.rsplit(":", 1)[0] + f":{self.publish_port.value}"
        return SinkSpec(self.results_endpoint, publish, cfg.outputs, cfg.preview_port, cfg.queue_size,
                        cfg.max_streams, cfg.curve, restart=self.sink_starts - 1,
                        console=self.console_frames if cfg.console else None)

    def _shutdown(self) -> None:
        """Captures first, then inference (it finishes what it holds), then the sink (it writes it)."""
        if self.console is not None:
            self.console.close()
        order = [n for n, c in self.children.items() if c.stage == "capture"] + ["inference", "sink"]
        for name in order:
            child = self.children.get(name)
            if child and child.process is not None:
                _stop(child.process)
        if self.control is not None:
            self.control.close()
        if self.link is not None:
            self.link.close()
        self.security.close()
        self.ctx.term()
        self.launcher.close()
        if self.http is not None:
            self.http.shutdown()
            self.http.server_close()
        log("supervisor", "stopped")

    # --- registry -------------------------------------------------------------------------------

    def _target_figures(self) -> list[tuple[str, int, float, float, bool]]:
        """(stream, target, score, presence, lost) of every target, for /metrics (read from the
        HTTP thread: each dict is copied in one step before it is walked)."""
        return [(sid, tid, t.score, t.presence, t.lost) for sid, rec in list(self.streams.items())
                for tid, t in list(rec.targets.items())]

    def _register(self, stream: StreamConfig) -> StreamRecord:
        endpoint = self.launcher.frames_endpoint(stream)
        slot = min(set(range(self.cfg.max_streams)) - {r.slot for r in self.streams.values()})
        rec = StreamRecord(stream, endpoint, self.mp.Value("q", 0, lock=False), self.mp.Value("b", 0, lock=False),
                           {i: tuple(b) for i, b in enumerate(stream.boxes)}, slot, next(self.registrations),
                           next_target=len(stream.boxes))
        self.streams[stream.id] = rec
        return rec

    def _send_command(self, cmd: Command) -> bool:
        """Commands follow the registry change; a process started later gets the change in its spec.
        False when no inference process is running to take it now."""
        if self.children["inference"].process is None:
            return False
        self.link.send(dataclasses.replace(cmd, generation=self.generation * GENERATION_SPAN))
        return True

    # --- events from the inference stage ---------------------------------------------------------

    def _on_ready(self, event: Ready, pixels: np.ndarray | None) -> None:
        self.ready = True
        for stream_id in self.streams:
            self._start_capture(stream_id)

    def _on_boxes(self, event: Boxes, pixels: np.ndarray | None) -> None:
        rec = self.streams.get(event.stream)
        for (tid, box), (_, score, presence, lost) in zip(event.boxes, event.states) if rec else ():
            if tid in rec.targets:
                rec.targets[tid].update(event.frame, box, score, presence, lost)

    def _on_target_changed(self, event: TargetChanged, pixels: np.ndarray | None) -> None:
        """Also kept in the registry: the frame's Boxes event may have been dropped (a full queue)."""
        rec = self.streams.get(event.stream)
        if rec and event.target in rec.targets:
            rec.targets[event.target].update(event.frame, event.box, event.score, event.presence,
                                             event.change == LOST)
        self.events.add(event.change, stream=event.stream, target=event.target, frame=event.frame,
                        score=event.score, presence=event.presence)
        log("supervisor", f"stream '{event.stream}': target {event.target} {event.change} on frame {event.frame} "
                          f"(presence {event.presence:.2f})")

    def _on_target_added(self, event: TargetAdded, pixels: np.ndarray | None) -> None:
        rec = self.streams.get(event.stream)
        if rec and rec.pending.pop(event.target, None):
            rec.targets[event.target] = TargetRecord(event.box, pixels.copy(), event.box, event.frame)
            self.events.add("target_added", stream=event.stream, target=event.target, frame=event.frame,
                            box=list(event.box))

    def _on_target_failed(self, event: TargetFailed, pixels: np.ndarray | None) -> None:
        rec = self.streams.get(event.stream)
        if rec:
            rec.pending.pop(event.target, None)
            log("supervisor", f"stream '{event.stream}': target {event.target} not started: {event.error}")
            self.events.add("target_failed", stream=event.stream, target=event.target, error=event.error)

    def _on_reply(self, event: Reply, pixels: np.ndarray | None) -> None:
        req = self.requests.get(event.req)
        if req is None:  # answered already (timed out): an added target must not live on unseen
            if event.ok and event.target >= 0:
                self._send_command(RemoveTarget(stream=event.stream, target=event.target))
            return
        if req.reply is not None:
            self._answer(event.req, req.reply)
            return
        rec = self.streams.get(req.stream)
        if event.ok and rec is not None:
            rec.targets[req.target] = TargetRecord(event.box, pixels.copy(), event.box, event.frame)
            self.events.add("target_added", stream=req.stream, target=req.target, frame=event.frame,
                            box=list(event.box))
            self._answer(event.req, {"ok": True, "stream": req.stream, "target": req.target, "frame": event.frame})
        else:
            self._answer(event.req, {"ok": False, "error": event.error or "stream was removed"})

    # --- control --------------------------------------------------------------------------------

    def _on_control(self, frames: list[bytes]) -> None:
        """Every request gets an answer and none can raise out of here: a mistake in handling one is
        logged and answered as an internal error, and serve goes on."""
        envelope, raw = frames[:-1], frames[-1]
        try:
            request = parse_request(raw)
            reply = getattr(self, f"_cmd_{request.cmd}")(envelope, **request.args)
        except UserError as exc:
            reply = {"ok": False, "error": str(exc)}
        except Exception as exc:  # noqa: BLE001 - the control endpoint must outlive any request
            log("supervisor", f"request {raw[:200]!r} failed: {type(exc).__name__}: {exc}")
            reply = {"ok": False, "error": f"internal error ({type(exc).__name__}); the request changed nothing "
                                           "(see the serve log)"}
        if reply is not None:
            self.control.send_multipart([*envelope, json.dumps(reply).encode()])

    def _answer(self, req: int, reply: dict[str, Any]) -> None:
        pending = self.requests.pop(req)
        self.control.send_multipart([*pending.envelope, json.dumps(reply).encode()])

    def _expire_requests(self) -> None:
        now = time.monotonic()
        for req, pending in list(self.requests.items()):
            if now > pending.deadline:
                self._answer(req, pending.reply or {"ok": False, "error": f"no answer from the inference stage "
                                                                          f"within {REQUEST_TIMEOUT_S:g} s; "
                                                                          "target not added"})

    def _stream(self, stream_id: str) -> StreamRecord:
        if stream_id not in self.streams:
            raise UserError(no_stream(stream_id, self.streams))
        return self.streams[stream_id]

    def _cmd_list(self, envelope: list[bytes]) -> dict[str, Any]:
        streams = [{"id": sid, "source": rec.config.source, "endpoint": rec.endpoint, "state": rec.state,
                    "paused": rec.paused, "pending": sorted(rec.pending),
                    "targets": [t.listing(tid) for tid, t in sorted(rec.targets.items())],
                    **self.launcher.placement(sid, self._process(_capture(sid)))}
                   for sid, rec in self.streams.items()]
        processes = {name: c.process.pid for name, c in self.children.items()
                     if c.process is not None and c.process.pid is not None}
        return {"ok": True, "streams": streams, "processes": processes}

    def _process(self, name: str) -> StageProcess | None:
        child = self.children.get(name)
        return child.process if child else None

    def _cmd_pause(self, envelope: list[bytes], stream: str) -> dict[str, Any] | None:
        return self._set_paused(envelope, stream, True)

    def _cmd_resume(self, envelope: list[bytes], stream: str) -> dict[str, Any] | None:
        return self._set_paused(envelope, stream, False)

    def _set_paused(self, envelope: list[bytes], stream: str, paused: bool) -> dict[str, Any] | None:
        """Answered once the inference stage confirms: after the reply no frame of a paused stream is
        processed. Without a running stage the answer is immediate (the next one starts paused)."""
        rec = self._stream(stream)
        rec.paused, rec.hold.value = paused, paused
        self.events.add("paused" if paused else "resumed", stream=stream)
        capture = self._process(_capture(stream))
        if capture is not None:
            self.launcher.shared_changed(capture, rec.hold)
        reply = {"ok": True, "stream": stream, "paused": paused}
        req = next(self.request_ids)
        if not self._send_command(SetPaused(stream=stream, paused=paused, req=req)):
            return reply
        self.requests[req] = PendingRequest(envelope, time.monotonic() + REQUEST_TIMEOUT_S, stream, reply=reply)
        return None

    def _cmd_add_target(self, envelope: list[bytes], stream: str, box: Box) -> None:
        rec = self._stream(stream)
        starting = sum(1 for r in self.requests.values() if r.stream == stream and r.target is not None)
        if len(rec.targets) + len(rec.pending) + starting >= self.cfg.max_targets:
            raise UserError(f"stream '{stream}' has its {self.cfg.max_targets} targets (max_targets); remove one first")
        if not self.ready:
            raise UserError("the inference stage is starting; try again in a moment")
        if rec.state != "running":
            raise UserError(f"stream '{stream}' has {rec.state}")
        req = next(self.request_ids)
        self.requests[req] = PendingRequest(envelope, time.monotonic() + REQUEST_TIMEOUT_S, stream, rec.next_target)
        self._send_command(AddTarget(req=req, stream=stream, target=rec.next_target, box=tuple(box)))
        rec.next_target += 1

    def _cmd_remove_target(self, envelope: list[bytes], stream: str, target: int) -> dict[str, Any]:
        rec = self._stream(stream)
        if target not in rec.targets and target not in rec.pending:
            known = ", ".join(map(str, sorted([*rec.targets, *rec.pending]))) or "none"
            raise UserError(f"stream '{stream}' has no target {target}; its targets: {known}")
        rec.targets.pop(target, None)
        rec.pending.pop(target, None)
        self._send_command(RemoveTarget(stream=stream, target=target))
        self.events.add("target_removed", stream=stream, target=target)
        return {"ok": True, "stream": stream, "target": target}

    def _cmd_add_stream(self, envelope: list[bytes], stream: dict) -> dict[str, Any]:
        if len(self.streams) >= self.cfg.max_streams:
            raise UserError(f"serve runs its {self.cfg.max_streams} streams (max_streams); remove one first")
        config = stream_from_dict(stream, self.cfg)
        if config.id in self.streams:
            raise UserError(f"stream '{config.id}' exists; remove it first or pick another id")
        rec = self._register(config)
        self._send_command(self._add_stream_command(config.id))
        if self.ready:
            self._start_capture(config.id)
        self.events.add("stream_added", stream=config.id)
        return {"ok": True, "stream": config.id, "targets": sorted(rec.pending)}

    def _cmd_remove_stream(self, envelope: list[bytes], stream: str) -> dict[str, Any]:
        self._stream(stream)
        child = self.children.pop(_capture(stream), None)
        if child and child.process is not None:
            _stop(child.process)
        del self.streams[stream]
        if child and child.process is not None and child.process.pid is not None:
            self.metrics.process_died(child.process.pid)
        self.metrics.stream_removed()
        self.launcher.forget(stream)
        self._send_command(RemoveStream(stream=stream))
        self.events.add("stream_removed", stream=stream)
        return {"ok": True, "stream": stream}


def _capture(stream_id: str) -> str:
    """The child name of a stream's capture process (stream ids cannot clash with 'inference')."""
    return f"capture {stream_id}"


def _stop(process: StageProcess) -> None:
    """SIGTERM, then SIGKILL for a process that does not end in time."""
    process.terminate()
    process.join(STOP_TIMEOUT_S)
    if process.exitcode is None:
        log("supervisor", f"process {process.pid} did not stop; killing it")
        process.kill()
        process.join()
