"""Where siammask keeps what it can make again (verified exports, parsed presets) between runs:
$SIAMMASK_CACHE_DIR, else $XDG_CACHE_HOME/siammask, else ~/.cache/siammask."""
from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """The cache folder (see the module docstring for the order)."""
    if os.environ.get("SIAMMASK_CACHE_DIR"):
        return Path(os.environ["SIAMMASK_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "siammask"
