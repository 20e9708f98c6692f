"""Logging for the `siammask` command and the processes it starts.

Library code logs through `logging` under the "siammask" logger and never sets handlers; the
entry points (the CLI, a serving stage's process) call `configure` once. Used as a library,
siammask's messages go wherever the application's logging sends them."""
from __future__ import annotations

import logging
import sys
import time

LOGGER = "siammask"


def level_for(quiet: bool, verbose: int) -> int:
    """--quiet: warnings and errors only; -v: debug messages too."""
    return logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO


class _Formatter(logging.Formatter):
    """'siammask: message'; a serving stage's lines carry the time and the stage (the record's, else
    the process's), as its summary lines always have."""

    def __init__(self, stage: str | None) -> None:
        super().__init__()
        self.stage = stage

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        stage = getattr(record, "stage", None) or self.stage
        if stage:
            return f"{time.strftime('%H:%M:%S', time.localtime(record.created))} siammask serve [{stage}]: {text}"
        kind = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        return f"siammask: {kind}{text}"


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (a test's capture, a redirected stream)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure(level: int, stage: str | None = None) -> None:
    """One stderr handler on the "siammask" logger at `level`; calling again replaces it. `stage`:
    this process is that serving stage, and every line says so. Records still propagate, so an
    application's (or a test's) own handlers see them too."""
    logger = logging.getLogger(LOGGER)
    for handler in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
        logger.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(_Formatter(stage))
    logger.addHandler(handler)
    logger.setLevel(level)
