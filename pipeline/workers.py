"""Cluster mode's inference stage: several inference processes, each in a Ray actor with the
resources `worker:` asks for, each holding some of the streams. To the supervisor the pool is one
inference stage (one process-like child, one command socket): it routes every command to the worker
holding the command's stream, and when a worker dies (its actor killed, its node gone) it asks Ray
for a new one, which starts from the registry as it is then (`spec()`: every target from its init
frame and box, at its last box, with the same ids), like a restarted local inference process.

Each worker runs `inference.run_inference`, the same stage as a local serve; only the streams and
seeds of its spec differ."""
from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ray
import zmq

from siammask.errors import UserError

from . import messages
from .hosts import Placement, RayProcess
from .config import CurveConfig, WorkerConfig
from .endpoints import check_stage_endpoint
from .inference import InferenceSpec, run_inference
from .launch import GENERATION_SPAN, fresh_generation
from .messages import AddStream, Command, RemoveStream
from .metrics import RESTARTS
from .process import Backoff, log
from .security import Security, load_keys


RETIRE_AFTER_S = 2.0  # a worker left without streams stops this long after its last one went (its
                      # stream's end still reaches the sink), so its node's CPUs are free again


@dataclass
class Worker:
    """One inference actor and the streams it holds; `process` is None while a restart waits."""

    number: int
    streams: set[str] = field(default_factory=set)
    process: RayProcess | None = None
    endpoint: ray.ObjectRef | None = None   # the command endpoint on its node, until it has started
    commands: zmq.Socket | None = None
    serial: int = 0                         # this start's part of its generation (random, see launch.py)
    started: float = 0.0
    restart_at: float | None = None
    retire_at: float | None = None          # set when its last stream is removed
    backoff: Backoff = field(default_factory=Backoff)

    @property
    def name(self) -> str:
        return f"inference {self.number}"

    @property
    def running(self) -> bool:
        return self.commands is not None


class WorkerPool:
    """The inference stage as Ray actors, answering the supervisor's process calls."""

    def __init__(self, spec: Callable[[], InferenceSpec], worker: WorkerConfig, env: dict[str, str],
                 curve: CurveConfig | None, driver_address: str, local_only: bool,
                 private: Callable[[str], str] | None) -> None:
        self.spec, self.config, self.env, self.driver_address = spec, worker, env, driver_address
        self.curve, self.local_only = curve, local_only  # what a worker's node must satisfy (check_stage_endpoint)
        self.refusals: set[str] = set()      # each reason for refusing a worker's node is logged once
        self.private = private                # ipc:// endpoints in the run folder (RayLauncher.private)
        first = spec()
        self.generation = first.stage.generation
        self.ctx = zmq.Context()
        self.security = Security(self.ctx, load_keys(curve) if curve else None)
        self.inbox = self.ctx.socket(zmq.PULL)  # the supervisor's commands, to be routed
        self.inbox.linger = 0
        self.security.bind(self.inbox, first.link.cmd_endpoint)
        count = max(1, math.ceil(len(first.stage.streams) / worker.max_streams))
        self.workers = [Worker(i) for i in range(count)]
        self.numbers = itertools.count(count)
        self.holder: dict[str, Worker] = {}
        for i, stream in enumerate(first.stage.streams):
            self._assign(stream.stream, self.workers[i % count])
        self.stopping = False
        self._exitcode: int | None = None
        for w in self.workers:
            self._place(w)

    pid = None  # many processes on many nodes; `siammask ctl list` shows them per stream

    # --- what the supervisor calls ----------------------------------------------------------------

    @property
    def exitcode(self) -> int | None:
        """Called every turn of the supervisor's loop: routes commands, looks after the workers."""
        if self._exitcode is None:
            if self.stopping:
                if all(w.process is None or w.process.exitcode is not None for w in self.workers):
                    self._close()
                    self._exitcode = 0
            else:
                for cmd, _ in messages.drain(self.inbox):
                    self._route(cmd)
                for w in list(self.workers):
                    self._look_after(w)
        return self._exitcode

    def terminate(self) -> None:
        """SIGTERM to every running stage (it finishes its frames); a worker still waiting for Ray
        to place it has nothing to finish and is dropped at once."""
        self.stopping = True
        for w in self.workers:
            if w.process is not None and w.running:
                w.process.terminate()
            elif w.process is not None:
                w.process.kill()
                w.process = None

    def join(self, timeout: float | None = None) -> None:
        end = time.monotonic() + (timeout if timeout is not None else math.inf)
        for w in self.workers:
            if w.process is not None:
                w.process.join(max(0.0, end - time.monotonic()) if timeout is not None else None)
        self.exitcode  # noqa: B018 - settles the code once every worker has ended

    def kill(self) -> None:
        if self._exitcode is not None:
            return
        for w in self.workers:
            if w.process is not None:
                w.process.kill()
        self._close()
        self._exitcode = -9

    def placement(self, stream: str) -> dict[str, Any]:
        """The worker holding `stream` and its node (None while Ray has not placed it)."""
        w = self.holder.get(stream)
        where = w.process.where() if w and w.process else None
        return {"worker": w.name if w else None, "worker_pid": w.process.pid if w and w.process else None,
                "node": where and where["node"], "node_address": where and where["address"]}

    # --- workers ----------------------------------------------------------------------------------

    def _assign(self, stream: str, worker: Worker) -> None:
        worker.streams.add(stream)
        worker.retire_at = None
        self.holder[stream] = worker

    def _place(self, w: Worker) -> None:
        """A new actor; its stage starts once Ray has placed it (see _look_after)."""
        w.process = RayProcess(Placement(self.config.num_cpus, self.config.num_gpus, spread=True), self.env)
        w.endpoint = w.process.host.free_endpoint.remote(self.driver_address,
                                                         self.private and self.private("commands"))
        w.serial = fresh_generation({o.serial for o in self.workers}, GENERATION_SPAN)
        w.started, w.restart_at = time.monotonic(), None

    def _look_after(self, w: Worker) -> None:
        if w.retire_at is not None and time.monotonic() >= w.retire_at:
            self._retire(w)
            return
        if w.process is None:
            if time.monotonic() >= w.restart_at:
                self._place(w)
            return
        if w.endpoint is not None and ray.wait([w.endpoint], timeout=0)[0]:
            try:
                endpoint = ray.get(w.endpoint)
                check_stage_endpoint(endpoint, w.name, self.local_only, self.curve)
                self._start(w, endpoint)
            except ray.exceptions.RayError:
                pass  # the host died while being placed: exitcode says so below
            except UserError as exc:  # its node may not host it: never started there, placed again later
                w.endpoint = None
                w.process.kill()
                self._restart_later(w, None if str(exc) in self.refusals else f"was refused its node: {exc}")
                self.refusals.add(str(exc))
                return
            w.endpoint = None
        code = w.process.exitcode
        if code is None:
            return
        self._restart_later(w, "lost its actor (node gone or actor killed)" if w.process.host_lost else (
            f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"))

    def _restart_later(self, w: Worker, why: str | None) -> None:
        """Its process is gone: a new one after the backoff (logged with `why`, unless None)."""
        if w.commands is not None:
            w.commands.close()
            w.commands = None
        w.process = None
        wait = w.backoff.next(time.monotonic() - w.started)
        w.restart_at = time.monotonic() + wait
        RESTARTS.labels("inference").inc()
        if why is not None:
            log("supervisor", f"{w.name} {why}; starting it again in {wait:g} s with stream(s) "
                              f"{', '.join(sorted(w.streams)) or 'none'}")

    def _retire(self, w: Worker) -> None:
        """Stop a worker without streams for good (its actor ends, freeing its resources)."""
        self.workers.remove(w)
        if w.commands is not None:
            w.commands.close()
        if w.process is not None:
            w.process.kill()  # ends the actor; its stage gets SIGTERM (parent-death signal) and stops
        log("supervisor", f"{w.name} holds no stream any more; stopped")

    def _start(self, w: Worker, endpoint: str) -> None:
        """The stage with this worker's streams and their targets, as the registry has them now."""
        spec = self.spec()
        stage = dataclasses.replace(spec.stage, streams=tuple(s for s in spec.stage.streams if s.stream in w.streams),
                                    seeds=tuple(t for t in spec.stage.seeds if t.stream in w.streams),
                                    generation=self._generation(w))
        mine = dataclasses.replace(spec, stage=stage, link=dataclasses.replace(spec.link, cmd_endpoint=endpoint))
        w.process.start(run_inference, (mine,))
        w.commands = self.ctx.socket(zmq.PUSH)  # connected: commands wait for the stage to bind
        w.commands.linger = 0
        w.commands.sndhwm = 1000
        self.security.connect(w.commands, endpoint)

    def _generation(self, w: Worker) -> int:
        """Unique per start of each worker, within the supervisor's generation (see launch.py)."""
        return self.generation + w.serial

    # --- commands ---------------------------------------------------------------------------------

    def _route(self, cmd: Command) -> None:
        """To the worker holding the stream; a new stream goes to the worker with the fewest (a new
        worker when every one is full). A worker still starting gets the registry in its spec, so a
        command it cannot take now is not lost; only a request waiting for its answer (add_target,
        pause, resume) times out and is answered with an error."""
        stream = cmd.stream
        if isinstance(cmd, AddStream) and stream not in self.holder:
            room = [w for w in self.workers if len(w.streams) < self.config.max_streams]
            if room:
                self._assign(stream, min(room, key=lambda w: len(w.streams)))
            else:
                self.workers.append(Worker(next(self.numbers)))
                self._assign(stream, self.workers[-1])
                self._place(self.workers[-1])
                return
        w = self.holder.get(stream)
        if w is None:
            return
        if w.running:
            messages.send(w.commands, dataclasses.replace(cmd, generation=self._generation(w)))
        if isinstance(cmd, RemoveStream):
            w.streams.discard(stream)
            del self.holder[stream]
            if not w.streams and len(self.workers) > 1:
                w.retire_at = time.monotonic() + RETIRE_AFTER_S

    def _close(self) -> None:
        for w in self.workers:
            if w.commands is not None:
                w.commands.close()
                w.commands = None
        self.inbox.close()
        self.security.close()
        self.ctx.term()
