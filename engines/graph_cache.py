"""ONNX Runtime's optimised graphs kept per machine, so that a process opens a graph without
optimising it again.

Optimising is most of a CPU session's set-up: nano's three graphs of a first result took 99-144 ms
one after another from the exported files and 48-50 ms from their optimised forms in a fresh
process (benchmarks/RESULTS.md, "Start-up: optimised graphs kept per machine"). An optimised graph
is ONNX Runtime's own (fused operators, NCHWc layouts chosen for the CPU's vector width), so its
entry is keyed by the exported graph's checksum, ONNX Runtime's version and the CPU's identity, and
only the CPU provider's graphs are kept. An entry's name also carries its own checksum, checked
before use: a damaged entry is dropped and made again. Entries are used only from a folder that
this user owns and no one else may write to (cache_dir.private), and written to a private name and
renamed into place (never half a file); the `KEEP` most recently used stay, the rest are removed
when a new one is written. Where no cache can be read or written, sessions open as they would
without one."""
from __future__ import annotations

import hashlib
import logging
import os
import platform
import threading
import time
from functools import cache
from pathlib import Path

from siammask.cache_dir import NoCache, cache_root, private, publish

from .sidecar import sha256

log = logging.getLogger(__name__)

KEEP = 16  # ~2.5 MB each for nano: the default's four graphs, and a few exports beside them
FOLDER = "optimised-graphs"
_SUFFIX = ".onnx"
_PARTIAL = ".partial"
PARTIAL_AGE_S = 3600.0  # a partial file older than this was left by a killed process


@cache
def machine_identity() -> str:
    """What an optimised graph depends on besides the graph, ONNX Runtime's version aside: the
    architecture and the first CPU's model and instruction sets (Linux: /proc/cpuinfo; elsewhere
    what `platform` says: on Linux `platform.processor()` runs a program, ~5 ms)."""
    parts = [platform.machine()]
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                if not line.strip():
                    break  # the first CPU's block is enough
                key = line.partition(":")[0].strip()
                if key in ("model name", "flags", "Features", "CPU part", "CPU implementer"):
                    parts.append(line.strip())
    except OSError:
        parts.append(platform.processor())
    return "\n".join(parts)


def _remove(path: Path) -> None:
    """Remove a cache file; one that cannot be removed (a read-only file system) stays."""
    try:
        path.unlink(missing_ok=True)
    except OSError as error:
        log.debug("could not remove %s (%s)", path, error)


class GraphCache:
    """The optimised form of one exported graph (`graph_sha256`, its checksum) for this machine."""

    def __init__(self, graph_sha256: str, runtime_version: str) -> None:
        self.folder = cache_root() / FOLDER  # NoCache when there is no cache folder at all
        key = f"{graph_sha256}\n{runtime_version}\n{machine_identity()}".encode()
        self.key = hashlib.sha256(key).hexdigest()[:32]

    def _usable_folder(self) -> bool:
        """The folder exists, is this user's and no one else may write to it: an entry found in it
        is one this user wrote, and it cannot be swapped between its check and its use."""
        try:
            return private(self.folder.lstat(), folder=True)
        except OSError:
            return False

    def find(self) -> Path | None:
        """The entry whose content matches the checksum in its name, marked as used; a damaged one
        is removed. None when there is none (or the folder is not private to this user)."""
        if not self._usable_folder():
            return None
        try:
            entries = sorted(self.folder.glob(f"{self.key}-*{_SUFFIX}"))
        except OSError:
            return None
        for entry in entries:
            try:
                if not private(entry.lstat()):
                    continue
                content = sha256(entry)  # in blocks: a whole graph held here raised the peak RSS
            except OSError:
                continue  # removed by another process's clean-up meanwhile
            if content[:16] == entry.stem.rpartition("-")[2]:
                try:
                    os.utime(entry)  # most recently used: the last to be removed
                except OSError:
                    pass
                return entry
            log.warning("the optimised graph %s is damaged; optimising the graph again", entry)
            _remove(entry)
        return None

    def dropped(self, entry: Path) -> None:
        """An entry ONNX Runtime could not open: removed, to be made again."""
        _remove(entry)

    def partial(self) -> Path | None:
        """A private name for ONNX Runtime to write the optimised graph to; None when the cache
        folder cannot be made or is not private to this user."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as error:
            log.debug("no cache for optimised graphs (%s)", error)
            return None
        if not self._usable_folder():
            log.debug("no cache for optimised graphs: %s is not private to this user", self.folder)
            return None
        return self.folder / f".{self.key}.{os.getpid()}.{threading.get_ident()}{_PARTIAL}"

    def store(self, partial: Path) -> None:
        """Rename what ONNX Runtime wrote into place under its checksum, then keep the KEEP most
        recently used entries. A failure leaves the cache as it was (the session is open anyway)."""
        try:
            publish(partial, self.folder / f"{self.key}-{sha256(partial)[:16]}{_SUFFIX}")
            _evict(self.folder)
        except OSError as error:
            log.debug("optimised graph not kept (%s)", error)
            _remove(partial)

    def discard(self, partial: Path) -> None:
        """What ONNX Runtime may have written of a graph it could not optimise or write."""
        _remove(partial)


def _evict(folder: Path) -> None:
    """Keep the KEEP most recently used entries; remove partial files left by killed processes
    (older than PARTIAL_AGE_S: younger ones may be another process's write in progress)."""
    def used(path: Path) -> float:
        try:
            return path.stat().st_mtime
        except OSError:
            return float("inf")  # gone already: nothing to remove

    entries = sorted(folder.glob(f"*{_SUFFIX}"), key=used, reverse=True)
    for old in entries[KEEP:]:
        _remove(old)
    for left in folder.glob(f".*{_PARTIAL}"):
        if used(left) < time.time() - PARTIAL_AGE_S:
            _remove(left)


def graph_cache(graph_sha256: str | None, runtime_version: str) -> GraphCache | None:
    """The cache entry for a graph with a known checksum, or None (no checksum, no cache folder)."""
    if not graph_sha256:
        return None
    try:
        return GraphCache(graph_sha256, runtime_version)
    except NoCache:
        return None
