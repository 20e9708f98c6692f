"""Where siammask keeps what it can make again (verified exports, parsed presets) between runs:
$SIAMMASK_CACHE_DIR, else $XDG_CACHE_HOME/siammask, else ~/.cache/siammask."""
from __future__ import annotations

import os
import stat
from pathlib import Path


class NoCache(OSError):
    """No cache folder can be named: no variable says where, and the user has no home folder (a
    container run as a uid without a passwd entry). Callers go on without the cache."""


def cache_root() -> Path:
    """The cache folder (see the module docstring for the order); NoCache when there is none."""
    if os.environ.get("SIAMMASK_CACHE_DIR"):
        return Path(os.environ["SIAMMASK_CACHE_DIR"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "siammask"
    try:
        return Path.home() / ".cache" / "siammask"
    except RuntimeError as exc:  # pathlib's "Could not determine home directory"
        raise NoCache(str(exc)) from None


def private(status: os.stat_result, folder: bool = False) -> bool:
    """Whether a cache file (or folder), as lstat or fstat saw it, is one this user may trust: a plain
    file (a folder, not a link), owned by this user, that no one else may write to. What another
    user could have put in a shared cache is not read."""
    kind = stat.S_ISDIR if folder else stat.S_ISREG
    return kind(status.st_mode) and status.st_uid == os.getuid() and not status.st_mode & 0o022


def publish(work: Path, final: Path) -> None:
    """Put a cache file written under a private name in place, whole (processes start together and
    read the cache meanwhile), with the mode `private` accepts: only its owner may write it."""
    work.chmod(0o644)
    os.replace(work, final)
