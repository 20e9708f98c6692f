"""Cluster mode's hosts: the same stage processes, started on Ray nodes instead of beside the
supervisor.

A `StageHost` is a Ray actor that asks its node for a stage's resources (an inference worker's CPUs
and GPUs, a capture's custom resources such as `camhost1`) and runs the stage's usual entry
point there as a child process, so no stage knows which transport started it. `RayProcess` gives
the supervisor the handful of `multiprocessing.Process` calls it uses (start, exitcode, terminate,
join, kill), so a stage on a node is restarted like one beside the supervisor: when a node dies,
its actors fail, the stage reads as killed, and its new host is one Ray places on a node that
still has the resources."""
from __future__ import annotations

import copy
import logging
import multiprocessing
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ray

from siammask.logs import LOGGER

from .endpoints import hold_tcp
from .exits import KILLED
from .process import stage_main

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Shared:
    """An argument that must be a `multiprocessing.Value` in the host (a capture's frame counter and
    hold flag): the host makes it there, starting at `initial`."""

    name: str
    typecode: str
    initial: int


@dataclass(frozen=True)
class Held:
    """An argument that is the socket holding the port of the host's stage endpoint (see
    StageHost.listen; None where that endpoint is an ipc:// file)."""


def node_address(node_id: str) -> str:
    """The IP a node was started with (the one other nodes reach it at)."""
    return next(n["NodeManagerAddress"] for n in ray.nodes() if n["NodeID"] == node_id)


@ray.remote(max_concurrency=4)  # `wait` blocks while `terminate` and `kill` must still get through
class StageHost:
    """Stage processes on the node Ray chose for this actor: one at a time, numbered by start (a
    pinned capture's host runs its next process after one ends)."""

    def __init__(self, env: dict[str, str]) -> None:
        for name, value in env.items():
            os.environ[name] = value
        metrics = env.get("PROMETHEUS_MULTIPROC_DIR")
        if metrics:
            os.makedirs(metrics, exist_ok=True)  # another host has none of the driver's folders
        self.mp = multiprocessing.get_context("spawn")
        self.processes: dict[int, multiprocessing.Process] = {}
        self.values: dict[str, Any] = {}
        self.listener: socket.socket | None = None  # see `listen`
        self.changed = threading.Condition()

    def where(self) -> dict[str, str]:
        node = ray.get_runtime_context().get_node_id()
        return {"node": node, "address": node_address(node), "host": socket.gethostname()}

    def listen(self, driver_address: str, private: str | None = None) -> str:
        """Where a pinned capture binds its frames socket: `private` (an ipc:// path in serve's run
        folder, when every node was on serve's machine at start) if this node is on the driver's
        machine, else a tcp port on this node's address (a node that joined since: see
        check_stage_endpoint); without `private`, tcp on loopback on the driver's machine (Ray gives
        every node the machine's outside address, even a test cluster's). A tcp port is held here
        for the host's life and each capture process takes it over (endpoints.hold_tcp). Answered
        once Ray has placed this host."""
        address = self.where()["address"]
        if address == driver_address and private:
            return private
        self.listener, endpoint = hold_tcp(LOOPBACK if address == driver_address else address)
        return endpoint

    def start(self, serial: int, level: int, target: Callable[..., None], args: tuple,
              only_on: str | None = None) -> int | None:
        """The stage's pid; None, with nothing started, when `only_on` (the driver's address, on a
        cluster of one machine) is not this node's: a node that joined later (see endpoints.late_node)."""
        if only_on is not None and self.where()["address"] != only_on:
            return None
        args = tuple(self._value(a) if isinstance(a, Shared) else self.listener if isinstance(a, Held) else a
                     for a in args)
        process = self.mp.Process(target=stage_main, args=(level, target, *args), daemon=True)
        process.start()
        with self.changed:
            self.processes[serial] = process
            self.changed.notify_all()
        return process.pid

    def _value(self, shared: Shared) -> Any:
        if shared.name not in self.values:
            self.values[shared.name] = self.mp.Value(shared.typecode, shared.initial, lock=False)
        return self.values[shared.name]

    def set_value(self, name: str, value: int) -> None:
        if name in self.values:
            self.values[name].value = value

    def wait(self, serial: int) -> int:
        """The exit code of process `serial` (which may not have started yet: calls run in threads)."""
        with self.changed:
            self.changed.wait_for(lambda: serial in self.processes)
        process = self.processes[serial]
        process.join()
        return process.exitcode

    def terminate(self) -> None:
        if self.processes:
            self.processes[max(self.processes)].terminate()

    def kill(self) -> None:
        if self.processes:
            self.processes[max(self.processes)].kill()


@dataclass(frozen=True)
class Placement:
    """What a stage asks of its node."""

    num_cpus: float = 0.0
    num_gpus: float = 0.0
    resources: dict[str, float] | None = None
    spread: bool = False              # inference workers: one per node while nodes have room

    def options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus,
                                "resources": dict(self.resources or {}), "max_restarts": 0}
        if self.spread:
            opts["scheduling_strategy"] = "SPREAD"
        return opts


class RayProcess:
    """A stage process in a StageHost, seen through the calls the supervisor makes on a
    multiprocessing.Process. A host that dies (its node removed, its actor killed) reads as exit
    code -9, like a process killed by SIGKILL. The host is placed at once; the stage starts when
    `start` is called."""

    def __init__(self, placement: Placement, env: dict[str, str], owns_host: bool = True) -> None:
        self.host = StageHost.options(**placement.options()).remote(env)
        self.owns_host = owns_host          # a pinned capture's host outlives its capture processes
        self._where = self.host.where.remote()
        self._start: ray.ObjectRef | None = None
        self._exit: ray.ObjectRef | None = None
        self._exitcode: int | None = None
        self._place: dict[str, str] | None = None
        self.host_lost = False              # the actor died (its node gone, or killed), not just the stage
        self.serial = 1                     # which process of its host this is
        self._refused: bool | None = None   # see `refused`; None until its host answered `start`

    def next_on_host(self) -> RayProcess:
        """The next stage process on this one's host, which keeps the host."""
        process = copy.copy(self)
        process.owns_host, process.serial, process.host_lost = False, self.serial + 1, False
        process._start = process._exit = process._exitcode = process._refused = None
        return process

    def start(self, target: Callable[..., None], args: tuple, only_on: str | None = None) -> None:
        """Start the stage once Ray has placed the host (on a node at `only_on`, if given)."""
        level = logging.getLogger(LOGGER).getEffectiveLevel()
        self._start = self.host.start.remote(self.serial, level, target, args, only_on)
        self._exit = self.host.wait.remote(self.serial)

    def refused(self) -> bool:
        """Its host would not start the stage on the node Ray placed it on (see StageHost.start);
        asked every turn of the supervisor's loop, so settled once."""
        if self._refused is None and self._start is not None and ray.wait([self._start], timeout=0)[0]:
            try:
                self._refused = ray.get(self._start) is None
            except ray.exceptions.RayError:
                self._refused = False  # the host died: its exit code says so
        return bool(self._refused)

    @property
    def pid(self) -> int | None:
        """The stage's pid on its node, once it has started there."""
        return _ready(self._start) if self._start is not None else None

    @property
    def exitcode(self) -> int | None:
        if self._exitcode is None:
            ref = self._exit if self._exit is not None else self._where
            done, _ = ray.wait([ref], timeout=0)
            if done:
                try:
                    code = ray.get(ref)
                except ray.exceptions.RayError:
                    code, self.host_lost = KILLED, True
                if ref is self._exit or code == KILLED:
                    self._exitcode = code
                    if self.owns_host:
                        ray.kill(self.host)  # frees the node's resources at once
        return self._exitcode

    def where(self) -> dict[str, str] | None:
        """Node id, address and host name once Ray has placed the host; None while it waits."""
        if self._place is None:
            self._place = _ready(self._where)
        return self._place

    def set_value(self, name: str, value: int) -> None:
        self.host.set_value.remote(name, value)

    def terminate(self) -> None:
        self.host.terminate.remote()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the stage to end; at once when it never started (its host not placed yet, or
        its start refused or lost): there is nothing to wait for, and a host Ray cannot place would
        hold a stopping serve for the whole timeout."""
        if self._exit is not None and ray.wait([self._start], timeout=0)[0] and self.pid is not None:
            ray.wait([self._exit], timeout=timeout)
        self.exitcode  # noqa: B018 - settles the code and releases the host

    def kill(self) -> None:
        if self.owns_host:
            ray.kill(self.host)
        else:
            self.host.kill.remote()


def _ready(ref: ray.ObjectRef) -> Any:
    """The value of `ref` if it is there now; None while it is not, or when its actor died."""
    done, _ = ray.wait([ref], timeout=0)  # never blocks the supervisor's loop
    if not done:
        return None
    try:
        return ray.get(ref)
    except ray.exceptions.RayError:
        return None
