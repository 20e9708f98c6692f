"""The supervisor's child table: every stage process of serve (the sink, each stream's capture, the
inference workers: one locally, several on a cluster), started, watched, restarted with backoff and
stopped in flow order by the one code here. A process beside the supervisor and one in a Ray actor
answer the same calls (`StageProcess`), so a cluster's worker is restarted like a local one.

What an exit means is decided once, in `Children.watch`: a capture whose source ended or failed is
done; any other stage that exits FATAL stops serve with exit 2 (restarting cannot fix bad weights or
an unwritable output); everything else is started again after its backoff, with a `restarted`
event, its metrics files marked dead and, for an inference worker, its waiting requests failed at
once (the `down` hook)."""
from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .console.hub import EventLog
from .exits import ENDED, FAILED, FATAL, STALLED, describe
from .launch import StageProcess
from .metrics import RESTARTS, StageMetrics
from .process import Backoff, log

STOP_TIMEOUT_S = 10.0
# A process's generation is drawn at random from [0, GENERATIONS) at each start: an inference
# process obeys commands of its own generation only, so only whoever was told it can command it (a
# guessable one let a stranger that reached a command socket pause a stream); the supervisor takes
# events of current generations only, and the sink sees each new process as a new origin.
GENERATIONS = 1 << 31


@dataclass
class Child:
    """A stage process and when to start it again."""

    name: str                                 # 'sink', 'capture ID', 'inference' or 'inference N' (cluster)
    stage: str                                # capture, inference or sink (the metrics label)
    start: Callable[[int], StageProcess]      # a new process of the given generation
    process: StageProcess | None = None
    generation: int = -1                      # random per start: only its supervisor can address it
    started: float = 0.0
    restart_at: float | None = None
    backoff: Backoff = field(default_factory=Backoff)
    commands: Any = None                      # inference: the pipe its commands go through, once started
    mirrored: bool = False                    # its metrics come as snapshots (a cluster's worker), not local files
    ready: bool = False                       # inference: its model is loaded

    def why(self, code: int) -> str:
        if getattr(self.process, "host_lost", False):
            return "lost its actor (node gone or actor killed)"
        return "stalled" if self.stage == "capture" and code == STALLED else describe(code)

    def stalls(self, code: int) -> bool:
        """A capture whose source stopped answering, or whose node (a pinned capture's) is gone:
        its stream gets no frames until a new process reads them."""
        return self.stage == "capture" and (code == STALLED or getattr(self.process, "host_lost", False))


class Children:
    """The table, and the one loop that looks after it (`watch`)."""

    def __init__(self, metrics: StageMetrics, events: EventLog, ended: Callable[[Child, int], None],
                 down: Callable[[Child, bool], str]) -> None:
        self.table: dict[str, Child] = {}
        self.metrics, self.events = metrics, events
        self.ended = ended                    # a capture whose source ended or failed (code ENDED or FAILED)
        self.down = down                      # a child's process is gone: clean up; what the restart brings back
        self.fatal = False                    # a stage exited FATAL: serve stops with exit 2

    def __getitem__(self, name: str) -> Child:
        return self.table[name]

    def get(self, name: str) -> Child | None:
        return self.table.get(name)

    def of_stage(self, stage: str) -> list[Child]:
        return [c for c in self.table.values() if c.stage == stage]

    def by_generation(self, generation: int) -> Child | None:
        """The inference child whose current process has this generation (None: a process since replaced)."""
        return next((c for c in self.table.values()
                     if c.stage == "inference" and c.process is not None and c.generation == generation), None)

    def add(self, child: Child) -> Child:
        self.table[child.name] = child
        self.start(child)
        return child

    def start(self, child: Child) -> None:
        used = {c.generation for c in self.table.values()}
        while (generation := secrets.randbelow(GENERATIONS)) in used:
            pass
        child.generation, child.started, child.restart_at, child.ready = generation, time.monotonic(), None, False
        child.process = child.start(generation)

    def watch(self) -> None:
        """Start what is due, and act on every process that has ended since the last look."""
        now = time.monotonic()
        for child in list(self.table.values()):
            if child.process is None:
                if now >= child.restart_at:
                    self.start(child)
                continue
            code = child.process.exitcode
            if code is None:
                continue
            if child.stage == "capture" and code in (ENDED, FAILED):
                self._gone(child)
                del self.table[child.name]
                self.ended(child, code)
            elif child.stage != "capture" and code == FATAL:
                self._gone(child)
                child.restart_at = math.inf
                log("supervisor", f"the {child.stage} stage cannot run (see above); stopping")
                self.fatal = True
            else:
                self.restart(child, child.why(code), child.stalls(code))

    def restart(self, child: Child, why: str | None, stalled: bool = False) -> None:
        """The only restart: its process is gone, a new one starts after the backoff (logged with
        `why`, unless None: a reason already logged once; `stalled`: a capture that stalled)."""
        self._gone(child)
        wait = child.backoff.next(time.monotonic() - child.started)
        child.restart_at = time.monotonic() + wait
        RESTARTS.labels(child.stage).inc()
        brings = self.down(child, stalled)
        self.events.add("restarted", stage=child.name, why=why or "refused", wait_s=wait)
        if why is not None:
            log("supervisor", f"{child.name} {why}; restarting in {wait:g} s{brings}")

    def _gone(self, child: Child, mark_dead: bool = True) -> None:
        process, child.process, child.ready = child.process, None, False
        if child.commands is not None:
            child.commands.close()
            child.commands = None
        if mark_dead and process is not None and process.pid is not None:
            self.metrics.process_died(process.pid, child.generation, child.mirrored)

    def remove(self, name: str, kill: bool = False) -> None:
        """Stop a child for good (a removed stream's capture, a retired worker)."""
        child = self.table.pop(name, None)
        if child is None or child.process is None:
            return
        if kill:
            child.process.kill()
        else:
            stop([child.process])
        self._gone(child)

    def stop_all(self) -> None:
        """Captures first, then inference (it finishes what it holds), then the sink (it writes it)."""
        for stage in ("capture", "inference", "sink"):
            stop([c.process for c in self.of_stage(stage) if c.process is not None])
        for child in self.table.values():
            self._gone(child, mark_dead=False)  # their metrics go with the run folder

    def down_now(self) -> list[str]:
        """The children not running now: waiting to be restarted, or an inference worker still
        loading its model (for /healthz; read from the metrics thread, so over a copy)."""
        return [c.name for c in list(self.table.values())
                if c.process is None or (c.stage == "inference" and not c.ready)]

    def pids(self) -> dict[str, int]:
        return {name: c.process.pid for name, c in list(self.table.items())
                if c.process is not None and c.process.pid is not None}


def stop(processes: Iterable[StageProcess]) -> None:
    """SIGTERM to all at once, then SIGKILL for those that do not end in time."""
    processes = list(processes)
    for process in processes:
        process.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.exitcode is None:
            if process.pid is not None:  # else it never started (a cluster worker still being placed)
                log("supervisor", f"process {process.pid} did not stop; killing it")
            process.kill()
            process.join()
