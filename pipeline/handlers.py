"""What the supervisor does with a control request (`siammask ctl`, the console) and with an event
of an inference worker: one dispatch table for both, keyed by the request's `cmd` or the event's
type. A request that needs the inference stage's answer (add a target, pause, resume) waits here
until the worker answers, its deadline passes, or the worker dies (then it is answered at once)."""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from siammask.errors import UserError

from .children import Child
from .config import PipelineConfig, stream_from_dict
from .console.hub import EventLog
from .control import parse_request
from .messages import (LOST, AddTarget, Box, Boxes, MetricsSnapshot, Ready, RemoveStream, RemoveTarget, Reply,
                       SetPaused, TargetAdded, TargetChanged, TargetFailed)
from .process import log
from .registry import Registry, TargetRecord
from .stages import Stages

REQUEST_TIMEOUT_S = 10.0


@dataclass
class PendingRequest:
    """A control request waiting for a ready inference worker: an added target (its answer depends
    on the stage), or a change the registry already holds (`reply`, given once the stage confirms
    it; a change for a process not running or not ready is answered at once and waits for none)."""

    envelope: list[bytes]
    deadline: float
    stream: str
    worker: str                               # the child it waits for
    target: int | None = None
    reply: dict[str, Any] | None = None


class Handlers:
    def __init__(self, cfg: PipelineConfig, registry: Registry, stages: Stages, events: EventLog,
                 reply: Callable[[list[bytes], bytes], None]) -> None:
        self.cfg, self.registry, self.stages, self.events, self.reply = cfg, registry, stages, events, reply
        self.requests: dict[int, PendingRequest] = {}
        self.next_request = 0
        self.rejected_snapshots = 0                   # metrics snapshots not well-formed, all told
        self._rejected_from: set[tuple[str, int]] = set()  # (child, generation) that sent one: logged once
        self.table: dict[Any, Callable] = {
            "list": self.list, "pause": self.pause, "resume": self.resume, "add_target": self.add_target,
            "remove_target": self.remove_target, "add_stream": self.add_stream, "remove_stream": self.remove_stream,
            Ready: self.on_ready, Boxes: self.on_boxes, TargetAdded: self.on_target_added,
            TargetFailed: self.on_target_failed, TargetChanged: self.on_target_changed, Reply: self.on_reply,
            MetricsSnapshot: self.on_metrics}

    # --- requests ---------------------------------------------------------------------------------

    def request(self, frames: list[bytes]) -> bytes | None:
        """The reply to a request (None: it waits for a worker). None can raise out of here: a
        mistake in handling one is logged and answered as an internal error, and serve goes on."""
        envelope, raw = frames[:-1], frames[-1]
        try:
            request = parse_request(raw)
            reply = self.table[request.cmd](envelope, **request.args)
        except UserError as exc:
            reply = {"ok": False, "error": str(exc)}
        except Exception as exc:  # noqa: BLE001 - the control endpoint must outlive any request
            log("supervisor", f"request {raw[:200]!r} failed: {type(exc).__name__}: {exc}")
            reply = {"ok": False, "error": f"internal error ({type(exc).__name__}); the request changed nothing "
                                           "(see the serve log)"}
        return None if reply is None else json.dumps(reply).encode()

    def _wait(self, envelope: list[bytes], stream: str, target: int | None = None,
              reply: dict[str, Any] | None = None) -> int:
        self.next_request += 1
        self.requests[self.next_request] = PendingRequest(envelope, time.monotonic() + REQUEST_TIMEOUT_S, stream,
                                                          self.stages.holder(stream).name, target, reply)
        return self.next_request

    def _answer(self, req: int, reply: dict[str, Any]) -> None:
        pending = self.requests.pop(req)
        self.reply(pending.envelope, json.dumps(reply).encode())

    def expire(self) -> None:
        now = time.monotonic()
        for req, pending in list(self.requests.items()):
            if now > pending.deadline:
                self._answer(req, pending.reply or {"ok": False, "error": f"no answer from the inference stage "
                                                                          f"within {REQUEST_TIMEOUT_S:g} s; "
                                                                          "target not added"})

    def worker_down(self, child: Child) -> None:
        """Its process is gone: what waited for it is answered now, not at its deadline."""
        for req, pending in list(self.requests.items()):
            if pending.worker == child.name:
                self._answer(req, pending.reply or {
                    "ok": False, "error": "the inference process stopped while starting this target "
                                          "(see the serve log); the target was not added"})

    def list(self, envelope: list[bytes]) -> dict[str, Any]:
        streams = [{"id": sid, "source": rec.config.source, "endpoint": rec.endpoint, "state": rec.state,
                    "paused": rec.paused, "pending": sorted(rec.pending),
                    "targets": [t.listing(tid) for tid, t in sorted(rec.targets.items())],
                    **self.stages.placement(sid)}
                   for sid, rec in self.registry.streams.items()]
        return {"ok": True, "streams": streams, "processes": self.stages.children.pids()}

    def pause(self, envelope: list[bytes], stream: str) -> dict[str, Any] | None:
        return self._set_paused(envelope, stream, True)

    def resume(self, envelope: list[bytes], stream: str) -> dict[str, Any] | None:
        return self._set_paused(envelope, stream, False)

    def _set_paused(self, envelope: list[bytes], stream: str, paused: bool) -> dict[str, Any] | None:
        """Answered once a running inference stage confirms: after the reply no frame of a paused
        stream is processed. Answered at once without a running process (the next one starts with
        the change in its spec) and while its process is not ready (a cluster worker Ray has not
        placed, a model loading): the command waits in its pipe and is the first it takes."""
        rec = self.registry[stream]
        rec.paused, rec.hold.value = paused, paused
        self.events.add("paused" if paused else "resumed", stream=stream)
        self.stages.hold_changed(stream)
        reply = {"ok": True, "stream": stream, "paused": paused}
        ready = self.stages.holder(stream).ready
        req = self._wait(envelope, stream, reply=reply)
        if not self.stages.send(SetPaused(stream=stream, paused=paused, req=req)) or not ready:
            # answered already when the send restarted the worker (worker_down answers what waited)
            return reply if self.requests.pop(req, None) is not None else None
        return None

    def add_target(self, envelope: list[bytes], stream: str, box: Box) -> None:
        rec, cfg = self.registry[stream], self.cfg
        starting = sum(1 for r in self.requests.values() if r.stream == stream and r.target is not None)
        if len(rec.targets) + len(rec.pending) + starting >= cfg.max_targets:
            raise UserError(f"stream '{stream}' has its {cfg.max_targets} targets (max_targets); remove one first")
        if not self.stages.holder(stream).ready:
            raise UserError("the inference stage is starting; try again in a moment")
        if rec.done:
            raise UserError(f"stream '{stream}' has {rec.state}")
        req = self._wait(envelope, stream, target=rec.next_target)
        self.stages.send(AddTarget(req=req, stream=stream, target=rec.next_target, box=tuple(box)))
        rec.next_target += 1

    def remove_target(self, envelope: list[bytes], stream: str, target: int) -> dict[str, Any]:
        rec = self.registry[stream]
        if target not in rec.targets and target not in rec.pending:
            known = ", ".join(map(str, sorted([*rec.targets, *rec.pending]))) or "none"
            raise UserError(f"stream '{stream}' has no target {target}; its targets: {known}")
        rec.targets.pop(target, None)
        rec.pending.pop(target, None)
        self.stages.send(RemoveTarget(stream=stream, target=target))
        self.events.add("target_removed", stream=stream, target=target)
        return {"ok": True, "stream": stream, "target": target}

    def add_stream(self, envelope: list[bytes], stream: dict) -> dict[str, Any]:
        cfg = self.cfg
        if len(self.registry.streams) >= cfg.max_streams:
            raise UserError(f"serve runs its {cfg.max_streams} streams (max_streams); remove one first")
        config = stream_from_dict(stream, cfg)
        if config.id in self.registry:
            raise UserError(f"stream '{config.id}' exists; remove it first or pick another id")
        rec = self.stages.add_stream(config)
        self.events.add("stream_added", stream=config.id)
        return {"ok": True, "stream": config.id, "targets": sorted(rec.pending)}

    def remove_stream(self, envelope: list[bytes], stream: str) -> dict[str, Any]:
        self.registry[stream]
        self.stages.send(RemoveStream(stream=stream))
        self.stages.remove_stream(stream)
        self.events.add("stream_removed", stream=stream)
        return {"ok": True, "stream": stream}

    # --- events of inference workers ----------------------------------------------------------------

    def event(self, child: Child, event: Any, pixels: np.ndarray | None) -> None:
        self.table[type(event)](child, event, pixels)

    def on_ready(self, child: Child, event: Ready, pixels: np.ndarray | None) -> None:
        child.ready = True
        self.stages.start_captures()

    def on_boxes(self, child: Child, event: Boxes, pixels: np.ndarray | None) -> None:
        rec = self.registry.streams.get(event.stream)
        for (tid, box), (_, score, presence, lost) in zip(event.boxes, event.states) if rec else ():
            if tid in rec.targets:
                rec.targets[tid].update(event.frame, box, score, presence, lost)

    def on_target_changed(self, child: Child, event: TargetChanged, pixels: np.ndarray | None) -> None:
        """Also kept in the registry: the frame's Boxes event may have been dropped (a full queue)."""
        rec = self.registry.streams.get(event.stream)
        if rec and event.target in rec.targets:
            rec.targets[event.target].update(event.frame, event.box, event.score, event.presence,
                                             event.change == LOST)
        self.events.add(event.change, stream=event.stream, target=event.target, frame=event.frame,
                            score=event.score, presence=event.presence)
        log("supervisor", f"stream '{event.stream}': target {event.target} {event.change} on frame {event.frame} "
                          f"(presence {event.presence:.2f})")

    def on_target_added(self, child: Child, event: TargetAdded, pixels: np.ndarray | None) -> None:
        rec = self.registry.streams.get(event.stream)
        if rec and rec.pending.pop(event.target, None):
            self._added(rec, event.stream, event.target, event.box, event.frame, pixels)

    def _added(self, rec: Any, stream: str, target: int, box: Box, frame: int, pixels: np.ndarray) -> None:
        rec.targets[target] = TargetRecord(box, pixels.copy(), box, frame)
        self.events.add("target_added", stream=stream, target=target, frame=frame, box=list(box))

    def on_target_failed(self, child: Child, event: TargetFailed, pixels: np.ndarray | None) -> None:
        """An initial box, or a target a restarted worker could not start again: forgotten either way
        (a restart must not try it again)."""
        rec = self.registry.streams.get(event.stream)
        if rec and rec.registration == event.registration:
            rec.pending.pop(event.target, None)
            rec.targets.pop(event.target, None)
            log("supervisor", f"stream '{event.stream}': target {event.target} dropped, it could not start: "
                              f"{event.error}")
            self.events.add("target_failed", stream=event.stream, target=event.target, error=event.error)

    def on_reply(self, child: Child, event: Reply, pixels: np.ndarray | None) -> None:
        req = self.requests.get(event.req)
        if req is None:  # answered already (timed out): an added target must not live on unseen
            if event.ok and event.target >= 0:
                self.stages.send(RemoveTarget(stream=event.stream, target=event.target))
            return
        if req.reply is not None:
            self._answer(event.req, req.reply)
            return
        rec = self.registry.streams.get(req.stream)
        if event.ok and rec is not None:
            self._added(rec, req.stream, req.target, event.box, event.frame, pixels)
            self._answer(event.req, {"ok": True, "stream": req.stream, "target": req.target, "frame": event.frame})
        else:
            self._answer(event.req, {"ok": False, "error": event.error or "stream was removed"})

    def on_metrics(self, child: Child, event: MetricsSnapshot, pixels: np.ndarray | None) -> None:
        """A worker's metrics files, sent from wherever it runs: from now on in /metrics like a local
        process's, and folded when it dies (children.py)."""
        pid = child.process.pid if child.process is not None else None
        if pid is None or pixels is None:
            return  # its start not confirmed yet: the next snapshot holds the same and more
        try:
            self.stages.children.metrics.mirror(pid, child.generation, event.files, pixels)
        except ValueError as exc:  # the worker's previous snapshot stays; the next may be good
            self.rejected_snapshots += 1
            if (child.name, child.generation) not in self._rejected_from:
                self._rejected_from.add((child.name, child.generation))
                log("supervisor", f"{child.name}: dropped {exc} (further ones dropped without a word)")
