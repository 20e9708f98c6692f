"""What every stage process shares: how it learns to stop, how it logs, how it backs off."""
from __future__ import annotations

import ctypes
import logging
import multiprocessing.resource_tracker
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from siammask.logs import LOGGER, configure

PR_SET_PDEATHSIG = 1
_log = logging.getLogger(f"{LOGGER}.pipeline")


class StopFlag:
    """Set by SIGTERM (the supervisor's way of stopping a stage) or by the supervisor dying.

    Ctrl-C reaches every process of the terminal's group; stages ignore it and let the supervisor
    stop them in order, so results already computed still reach the outputs."""

    def __init__(self) -> None:
        self._set = False
        self._parent = os.getppid()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, self._on_term)
        _die_with_parent()

    def _on_term(self, signum: int, frame: object) -> None:
        self._set = True

    def __bool__(self) -> bool:
        return self._set or os.getppid() != self._parent


def _die_with_parent() -> None:
    """Linux: get SIGTERM when the supervisor dies, even by SIGKILL, so no stage is ever orphaned."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def log(stage: str, message: str) -> None:
    """One line of the serving log, marked with its stage (the command prints it with the time)."""
    _log.info(message, extra={"stage": stage})


def stage_main(log_level: int, target: Callable[..., None], *args: Any) -> None:
    """Entry of a stage process: a spawned process starts without the command's logging set-up,
    so it gets the same level first."""
    configure(log_level)
    target(*args)


def route_logging(stage: str) -> None:
    """The library's messages in this stage process (a truncated file, ...) as serve log lines of
    `stage`, at the level the process was started with."""
    configure(logging.getLogger(LOGGER).getEffectiveLevel(), stage)


class Backoff:
    """Waits that double from `first` to `most` seconds, back to `first` after a long good run."""

    def __init__(self, first: float = 0.5, most: float = 10.0, healthy_after: float = 30.0) -> None:
        self.first, self.most, self.healthy_after = first, most, healthy_after
        self._next = first

    def next(self, ran_for: float) -> float:
        """The wait before the next try, given how long the last one lasted."""
        if ran_for >= self.healthy_after:
            self._next = self.first
        wait, self._next = self._next, min(self.most, self._next * 2)
        return wait



def stop_resource_tracker() -> None:
    """End multiprocessing's resource tracker (started with the first spawned stage) now that every
    stage has stopped, rather than after serve has exited: nothing of serve is left behind it."""
    stop = getattr(multiprocessing.resource_tracker._resource_tracker, "_stop", None)  # noqa: SLF001 - no public call
    if stop is not None:
        stop()
