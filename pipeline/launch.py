"""Where the supervisor's stage processes run: beside it (`LocalLauncher`), or on the nodes of a Ray
cluster (`pipeline.cluster.RayLauncher`, imported only in cluster mode). The supervisor keeps one
logic (registry, restarts with backoff, control, metrics) and asks its launcher for endpoints and
processes; anything a launcher returns answers `exitcode`, `pid`, `terminate`, `join` and `kill`
like a `multiprocessing.Process`."""
from __future__ import annotations

import logging
import multiprocessing
import secrets
import socket
from collections.abc import Callable
from typing import Any, Protocol

from siammask.logs import LOGGER

from .capture import CaptureSpec, run_capture
from .config import StreamConfig
from .endpoints import RunDir
from .inference import run_inference
from .process import stage_main

# An inference process's generation is the supervisor's times this span, plus which start of a
# cluster worker it is: the supervisor keeps events whose generation // span is its own, the sink
# sees every new process as a new origin. Both parts are drawn at random for each start, so a
# command is obeyed only from whoever was told the generation (a guessable one let a stranger that
# reached a command socket pause a stream).
GENERATION_SPAN = 1 << 16
SUPERVISOR_GENERATIONS = 1 << 31


def fresh_generation(used: set[int], below: int) -> int:
    """A random number in [0, below) that is not in `used`."""
    while (drawn := secrets.randbelow(below)) in used:
        pass
    return drawn


class StageProcess(Protocol):
    pid: int | None
    exitcode: int | None

    def terminate(self) -> None: ...

    def join(self, timeout: float | None = None) -> None: ...

    def kill(self) -> None: ...


class Launcher(Protocol):
    def endpoint(self, name: str) -> str:
        """Where a stage binds a socket that stages of this run connect to."""

    def frames_endpoint(self, stream: StreamConfig) -> str:
        """Where a stream's capture binds (on the node it is pinned to, in cluster mode)."""

    def spawn(self, target: Callable[..., None], args: tuple) -> StageProcess:
        """A stage process."""

    def spawn_capture(self, spec: CaptureSpec, counter: Any, hold: Any) -> StageProcess:
        """A stream's capture process; `counter` and `hold` are the supervisor's shared values."""

    def inference(self, spec: Callable[[], Any]) -> StageProcess:
        """The inference stage; `spec()` is the InferenceSpec for the registry as it is now."""

    def shared_changed(self, process: StageProcess, hold: Any) -> None:
        """The supervisor set a capture's hold flag."""

    def forget(self, stream: str) -> None:
        """A stream was removed."""

    def placement(self, stream: str, capture: StageProcess | None) -> dict[str, Any]:
        """Which worker and node hold a stream (for `siammask ctl list`)."""

    def close(self) -> None: ...


class LocalLauncher:
    """Every stage a child process of the supervisor (spawned: no state inherited by accident)."""

    def __init__(self, run_dir: RunDir) -> None:
        self.run_dir = run_dir
        self.mp = multiprocessing.get_context("spawn")

    def endpoint(self, name: str) -> str:
        return self.run_dir.endpoint(name)

    def frames_endpoint(self, stream: StreamConfig) -> str:
        return stream.endpoint or self.run_dir.endpoint("frames")

    def spawn(self, target: Callable[..., None], args: tuple) -> multiprocessing.Process:
        level = logging.getLogger(LOGGER).getEffectiveLevel()
        process = self.mp.Process(target=stage_main, args=(level, target, *args), daemon=True)
        process.start()
        return process

    def spawn_capture(self, spec: CaptureSpec, counter: Any, hold: Any) -> multiprocessing.Process:
        return self.spawn(run_capture, (spec, counter, hold))

    def inference(self, spec: Callable[[], Any]) -> multiprocessing.Process:
        return self.spawn(run_inference, (spec(),))

    def shared_changed(self, process: StageProcess, hold: Any) -> None:
        """Shared memory: the child sees the change already."""

    def forget(self, stream: str) -> None:
        """Nothing is kept per stream."""

    def placement(self, stream: str, capture: StageProcess | None) -> dict[str, Any]:
        return {"worker": "inference", "node": socket.gethostname()}

    def close(self) -> None:
        """Nothing beyond the child processes, which the supervisor stops."""
