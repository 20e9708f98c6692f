"""serve's stage processes as children of the supervisor (pipeline/children.py): what each one runs
(its spec, from the registry as it is when it starts), which inference worker holds each stream
(pipeline/workers.py: one beside the supervisor, or several on a cluster, each a child) and the
commands sent to it, and the captures, which start once inference is ready."""
from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Callable
from typing import Any

from .capture import CaptureSpec
from .children import Child, Children
from .config import PipelineConfig, StreamConfig
from .console.hub import EventLog
from .exits import ENDED
from .launch import Launcher, StageProcess
from .messages import Command
from .metrics import StageMetrics
from .process import log
from .registry import Registry, StreamRecord
from .security import Security
from .sink import SinkSpec, run_sink
from .transport import COMMANDS_WAITING, CommandPipe, LinkSpec
from .workers import Holders


class Stages:
    def __init__(self, cfg: PipelineConfig, launcher: Launcher, registry: Registry, security: Security,
                 events: EventLog, metrics: StageMetrics, mp: Any, console_frames: str) -> None:
        self.cfg, self.launcher, self.registry, self.security, self.events = cfg, launcher, registry, security, events
        self.children = Children(metrics, events, self._capture_ended, self._child_down)
        self.holders = Holders(list(registry.streams), launcher.max_streams)
        self.worker_down: Callable[[Child], None] = lambda child: None  # its waiting requests (handlers.py)
        self.workers: dict[str, int] = {}     # an inference child's name -> its worker number
        self.refusals: set[str] = set()       # why a cluster node may not host a worker, each logged once
        self.last_frames = mp.Array("q", [-1] * (2 * cfg.max_streams), lock=False)  # see sink.Accounts
        self.publish_port = mp.Value("i", 0, lock=False)  # the port the sink got for a publish port '*'
        self.console_watching = mp.Value("i", 0, lock=False)  # the sink encodes pictures while > 0
        self.console_frames = console_frames
        self.sink_starts = 0
        self.events_endpoint = ""             # where the supervisor bound the events socket, before `start`
        self.results_endpoint = launcher.endpoint("results")

    def start(self) -> None:
        """The sink and the inference workers (each worker's captures follow once it is ready)."""
        self.children.add(Child("sink", "sink", lambda generation: self.launcher.spawn(
            run_sink, (self._sink_spec(), self.last_frames, self.publish_port, self.console_watching,
                       self.launcher.listener(self.results_endpoint)))))
        for number in self.holders.streams:
            self._add_worker(number)

    def look_after(self) -> None:
        self.children.watch()
        self._look_after_workers()
        self._look_after_stalls()

    # --- inference workers ----------------------------------------------------------------------

    def _add_worker(self, number: int) -> None:
        name = self.launcher.worker_name(number)
        self.workers[name] = number
        self.children.add(Child(name, "inference", lambda generation: self._start_worker(name, generation),
                                mirrored=self.launcher.metrics_every_s > 0))

    def _start_worker(self, name: str, generation: int) -> StageProcess:
        """A worker process with its complete spec: the supervisor binds its command pipe first, so
        the endpoint is known before the process runs wherever it is placed."""
        child = self.children[name]
        child.commands = CommandPipe(self.security, self.launcher.supervisor_endpoint("commands"))
        cfg = self.cfg
        link = LinkSpec(child.commands.endpoint, self.events_endpoint, self.results_endpoint, cfg.queue_size,
                        cfg.queue_size + cfg.max_streams, cfg.curve)
        streams = self.holders.streams[self.workers[name]]
        return self.launcher.inference(self.registry.inference_spec(streams, generation, link,
                                                                    self.launcher.metrics_every_s))

    def _look_after_workers(self) -> None:
        """Hand each worker the commands that waited for it to connect; restart one placed on a node
        that may not host it (a cluster's: its stage never started there); retire the empty ones."""
        for child in self.children.of_stage("inference"):
            if child.process is None:
                continue
            refusal = self.launcher.refusal(child.process)
            if refusal is not None:  # placed again later; each reason is logged once
                child.process.kill()
                self.children.restart(child, None if refusal in self.refusals else f"was refused its node: {refusal}")
                self.refusals.add(refusal)
                continue
            child.commands.flush()
        for number in self.holders.retiring(time.monotonic()):
            name = self.launcher.worker_name(number)
            self.children.remove(name, kill=True)
            del self.workers[name]
            log("supervisor", f"{name} holds no stream any more; stopped")

    def holder(self, stream: str) -> Child:
        return self.children[self.launcher.worker_name(self.holders.holder[stream])]

    def send(self, cmd: Command) -> bool:
        """Commands follow the registry change; a process started later gets the change in its spec.
        False when the stream's worker has no running process to take it now, or one that took none
        of the commands waiting for it: that one is restarted, from a spec that holds the change."""
        child = self.holder(cmd.stream)
        if child.process is None:
            return False
        if child.commands.send(dataclasses.replace(cmd, generation=child.generation)):
            return True
        child.process.kill()
        self.children.restart(child, f"took none of the {COMMANDS_WAITING} commands waiting for it")
        return False

    def _child_down(self, child: Child, stalled: bool) -> str:
        """What a restarted child brings back (for its log line); an inference worker's waiting
        requests are answered now; a stalled capture's stream is reported stalled."""
        if stalled:
            self._stream_stalled(_stream_of(child))
        if child.stage != "inference":
            return ""
        self.worker_down(child)
        streams = sorted(self.holders.streams.get(self.workers[child.name], ()))
        targets = sum(len(self.registry.streams[sid].targets) for sid in streams)
        return f" with {targets} target(s) of stream(s) {', '.join(streams) or 'none'}"

    def placement(self, stream: str) -> dict[str, Any]:
        worker = self.children.get(self.launcher.worker_name(self.holders.holder[stream])) \
            if stream in self.holders.holder else None
        capture = self.children.get(_capture(stream))
        return self.launcher.placement(worker and worker.name, worker and worker.process,
                                       capture and capture.process)

    # --- streams --------------------------------------------------------------------------------

    def add_stream(self, config: StreamConfig) -> StreamRecord:
        rec = self.registry.register(config, self.launcher.frames_endpoint(config))
        number, new = self.holders.add(config.id)
        if new:
            self._add_worker(number)
        else:
            self.send(self.registry.add_stream_command(config.id))
        if self.holder(config.id).ready:
            self.start_captures()
        return rec

    def remove_stream(self, stream: str) -> None:
        self.children.remove(_capture(stream))
        rec = self.registry.streams.pop(stream)
        self.holders.remove(stream, time.monotonic())
        self.children.metrics.stream_removed()
        self.launcher.forget(stream, rec.endpoint)

    def hold_changed(self, stream: str) -> None:
        capture = self.children.get(_capture(stream))
        if capture is not None and capture.process is not None:
            self.launcher.shared_changed(capture.process, self.registry.streams[stream].hold)

    def start_captures(self) -> None:
        """A capture for every stream that has none (they start once inference is ready)."""
        for stream_id, rec in self.registry.streams.items():
            if rec.config.remote or _capture(stream_id) in self.children.table or rec.done:
                continue
            spec = CaptureSpec(rec.config, rec.endpoint, self.cfg.queue_size, self.cfg.open_timeout_s,
                               self.cfg.read_timeout_s, self.cfg.curve)
            runs = itertools.count()
            self.children.add(Child(_capture(stream_id), "capture", lambda generation, rec=rec, spec=spec, runs=runs:
                                    self._spawn_capture(rec, dataclasses.replace(spec, run=next(runs)))))

    def _spawn_capture(self, rec: StreamRecord, spec: CaptureSpec) -> StageProcess:
        """Frame ids go on from the last one published: a capture on another node (cluster mode)
        cannot share the counter, so it starts from the sink's last frame of the stream."""
        rec.counter.value = max(rec.counter.value, self._published(rec) + 1)
        return self.launcher.spawn_capture(spec, rec.counter, rec.hold)

    def _published(self, rec: StreamRecord) -> int:
        """The last frame of this stream the sink published (-1: none of this registration yet)."""
        return self.last_frames[2 * rec.slot + 1] if self.last_frames[2 * rec.slot] == rec.registration else -1

    def _stream_stalled(self, stream_id: str) -> None:
        rec = self.registry.streams.get(stream_id)
        if rec is not None and rec.state == "running":
            rec.state, rec.stalled_after = "stalled", self._published(rec)
            self.events.add("stream_stalled", stream=stream_id)

    def _look_after_stalls(self) -> None:
        """A stalled stream runs again once the sink publishes a frame newer than its last one."""
        for stream_id, rec in self.registry.streams.items():
            if rec.state == "stalled" and self._published(rec) > rec.stalled_after:
                rec.state = "running"
                self.events.add("stream_running", stream=stream_id)

    def _capture_ended(self, child: Child, code: int) -> None:
        stream_id = _stream_of(child)
        rec = self.registry.streams[stream_id]
        rec.state = "ended" if code == ENDED else "failed"
        self.events.add(f"stream_{rec.state}", stream=stream_id)
        log("supervisor", f"stream '{stream_id}' {rec.state}")

    def _sink_spec(self) -> SinkSpec:
        cfg = self.cfg
        self.sink_starts += 1
        publish = cfg.publish
        if self.publish_port.value:  # a restarted sink binds the port the first one was given for '*'
            publish = publish.rsplit(":", 1)[0] + f":{self.publish_port.value}"
        return SinkSpec(self.results_endpoint, publish, cfg.outputs, cfg.preview_port, cfg.queue_size,
                        cfg.max_streams, cfg.curve, restart=self.sink_starts - 1,
                        console=self.console_frames if cfg.console else None)


def _capture(stream_id: str) -> str:
    """The child name of a stream's capture process (stream ids cannot clash with 'inference')."""
    return f"capture {stream_id}"


def _stream_of(capture: Child) -> str:
    """The stream of a capture child (the inverse of _capture)."""
    return capture.name.split(" ", 1)[1]
