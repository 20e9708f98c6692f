"""Where the supervisor's stage processes run: beside it (`LocalLauncher`), or on the nodes of a Ray
cluster (`pipeline.cluster.RayLauncher`, imported only in cluster mode). The supervisor keeps one
logic (registry, the child table that restarts with backoff, control, metrics) and asks its launcher
for endpoints and processes; anything a launcher returns answers `exitcode`, `pid`, `terminate`,
`join` and `kill` like a `multiprocessing.Process`."""
from __future__ import annotations

import logging
import multiprocessing
import socket
from collections.abc import Callable
from typing import Any, Protocol

from siammask.logs import LOGGER

from .capture import CaptureSpec, run_capture
from .config import StreamConfig
from .endpoints import RunDir, hold_tcp
from .inference import InferenceSpec, run_inference
from .process import stage_main


class StageProcess(Protocol):
    pid: int | None
    exitcode: int | None

    def terminate(self) -> None: ...

    def join(self, timeout: float | None = None) -> None: ...

    def kill(self) -> None: ...


class Launcher(Protocol):
    def endpoint(self, name: str) -> str:
        """Where a stage binds a socket that stages of this run connect to: an ipc:// file in the run
        folder, or a tcp:// port this launcher holds until the stage takes it (see `listener`)."""

    def listener(self, endpoint: str) -> socket.socket | None:
        """The socket listening on a tcp `endpoint` this launcher gave (endpoints.hold_tcp), for the
        stage that binds it; None for the others (ipc://, an endpoint from the config)."""

    def supervisor_endpoint(self, name: str) -> str:
        """Where the supervisor binds a socket that stages connect to: an ipc:// file in the run folder
        (LocalLauncher; a cluster of this machine run by serve's user), or tcp:// with port '*'
        (ZeroMQ picks a free one as it binds, and the socket reports it)."""

    def frames_endpoint(self, stream: StreamConfig) -> str:
        """Where a stream's capture binds (on the node it is pinned to, in cluster mode)."""

    def spawn(self, target: Callable[..., None], args: tuple) -> StageProcess:
        """A stage process."""

    def spawn_capture(self, spec: CaptureSpec, counter: Any, hold: Any) -> StageProcess:
        """A stream's capture process; `counter` and `hold` are the supervisor's shared values."""

    max_streams: int | None  # streams per inference worker (None: one worker holds every stream)
    metrics_every_s: float   # how often a worker sends its metrics files (0: they are where the supervisor reads)

    def worker_name(self, number: int) -> str:
        """The child name of inference worker `number`."""

    def inference(self, spec: InferenceSpec) -> StageProcess:
        """An inference worker, started from its complete spec (a cluster's as soon as Ray places it)."""

    def refusal(self, process: StageProcess) -> str | None:
        """Why the node a worker was placed on may not host it (its stage did not start there), or None."""

    def shared_changed(self, process: StageProcess, hold: Any) -> None:
        """The supervisor set a capture's hold flag."""

    def forget(self, stream: str, endpoint: str) -> None:
        """A stream was removed (`endpoint`: where its capture bound)."""

    def placement(self, worker: str | None, process: StageProcess | None,
                  capture: StageProcess | None) -> dict[str, Any]:
        """Which worker and node hold a stream (for `siammask ctl list`)."""

    def close(self) -> None: ...


class LocalLauncher:
    """Every stage a child process of the supervisor (spawned: no state inherited by accident)."""

    max_streams = None
    metrics_every_s = 0.0  # the files are in the supervisor's folder: read there, at no cost

    def __init__(self, run_dir: RunDir) -> None:
        self.run_dir = run_dir
        self.mp = multiprocessing.get_context("spawn")
        self.held: dict[str, socket.socket] = {}  # tcp endpoint -> the socket holding its port

    def worker_name(self, number: int) -> str:
        return "inference"

    def endpoint(self, name: str) -> str:
        return self.run_dir.endpoint(name)

    def hold(self, address: str) -> str:
        """A tcp endpoint on `address` for a stage spawned here, its port held until `release`."""
        listener, endpoint = hold_tcp(address)
        self.held[endpoint] = listener
        return endpoint

    def listener(self, endpoint: str) -> socket.socket | None:
        return self.held.get(endpoint)

    def release(self, endpoint: str) -> None:
        listener = self.held.pop(endpoint, None)
        if listener is not None:
            listener.close()

    def supervisor_endpoint(self, name: str) -> str:
        return self.run_dir.endpoint(name)

    def frames_endpoint(self, stream: StreamConfig) -> str:
        return stream.endpoint or self.run_dir.endpoint("frames")

    def spawn(self, target: Callable[..., None], args: tuple) -> multiprocessing.Process:
        level = logging.getLogger(LOGGER).getEffectiveLevel()
        process = self.mp.Process(target=stage_main, args=(level, target, *args), daemon=True)
        process.start()
        return process

    def spawn_capture(self, spec: CaptureSpec, counter: Any, hold: Any) -> multiprocessing.Process:
        return self.spawn(run_capture, (spec, counter, hold, self.listener(spec.endpoint)))

    def inference(self, spec: InferenceSpec) -> multiprocessing.Process:
        return self.spawn(run_inference, (spec,))

    def refusal(self, process: StageProcess) -> str | None:
        """Every process here runs beside the supervisor."""
        return None

    def shared_changed(self, process: StageProcess, hold: Any) -> None:
        """Shared memory: the child sees the change already."""

    def forget(self, stream: str, endpoint: str) -> None:
        self.release(endpoint)

    def placement(self, worker: str | None, process: StageProcess | None,
                  capture: StageProcess | None) -> dict[str, Any]:
        return {"worker": worker, "node": socket.gethostname()}

    def close(self) -> None:
        """The held ports (the child processes, which the supervisor stops, are gone)."""
        for endpoint in list(self.held):
            self.release(endpoint)
