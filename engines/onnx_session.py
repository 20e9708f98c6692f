"""Opening an exported ONNX graph in ONNX Runtime, with every failure a one-line UserError."""
from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from siammask.errors import UserError, first_line
from siammask.threads import inference_spinning

from .graph_cache import graph_cache

log = logging.getLogger(__name__)

_arena_lock = threading.Lock()
_arena_registered = False


def _share_one_cpu_arena(ort) -> None:
    """Register one CPU memory arena for the whole process (ONNX Runtime's environment allocator),
    once. Each session used to grow an arena of its own and keep it; a tracker runs its sessions
    one after another, so in one shared arena what one run frees the next reuses: peak RSS of
    `siammask track` on the default weights 194-196 -> 173-186 MB, outputs identical
    (benchmarks/RESULTS.md). The arena keeps its high-water mark until the process ends: a Python
    API user who drops a tracker and loads another reuses that memory but does not get it back."""
    global _arena_registered
    with _arena_lock:
        if not _arena_registered:
            cpu = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
            # max memory 0 and -1 for the rest: ONNX Runtime's defaults (growth by powers of two)
            ort.create_and_register_allocator(cpu, ort.OrtArenaCfg(0, -1, -1, -1))
            _arena_registered = True


def _options(ort, threads: int | None, level):
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    options.log_severity_level = 3  # errors only: the CPU provider warns about every unused initializer
    if threads:
        options.intra_op_num_threads = threads
    # Threads spin between the operators of a run where siammask.threads says so, and always stop
    # when the run ends: a tracker runs two or three sessions in turn, and a pool still spinning
    # after its run took the cores from the next session and from the CPU work between them
    # (benchmarks/RESULTS.md, "Tracker step by stage" and "Threads that spin within a run").
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if inference_spinning() else "0")
    options.add_session_config_entry("session.force_spinning_stop", "1")
    _share_one_cpu_arena(ort)
    options.add_session_config_entry("session.use_env_allocators", "1")
    return options


def open_session(path: Path, providers: Sequence[str | tuple[str, dict]],
                 threads: int | None = None, data: bytes | None = None, graph_sha256: str | None = None):
    """An ONNX Runtime session on `path` (or on `data`, the bytes read from it earlier) with full
    graph optimisation and threads that spin (siammask.threads) only while a run lasts; a corrupt or foreign
    file becomes a UserError instead of ONNX Runtime's multi-line traceback. On the CPU provider, a
    graph whose checksum is given (`data`'s own when given) is optimised once per machine
    (engines/graph_cache.py)."""
    import onnxruntime as ort

    providers = list(providers)
    if data is not None and graph_sha256:
        graph_sha256 = hashlib.sha256(data).hexdigest()  # what is opened, even if the file changed since
    kept = graph_cache(graph_sha256, ort.__version__) if providers == ["CPUExecutionProvider"] else None
    entry = kept.find() if kept else None
    if entry is not None:
        try:
            return ort.InferenceSession(str(entry), _options(ort, threads, ort.GraphOptimizationLevel.ORT_DISABLE_ALL),
                                        providers=providers)
        except Exception as exc:  # ORT raises several unrelated types for unreadable models
            log.warning("the optimised graph %s did not open (%s); optimising the graph again", entry, first_line(exc))
            kept.dropped(entry)
    source = str(path) if data is None else data
    partial = kept.partial() if kept else None
    if partial is not None:
        options = _options(ort, threads, ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
        options.optimized_model_filepath = str(partial)
        try:
            session = ort.InferenceSession(source, options, providers=providers)
        except Exception as exc:  # the graph, or only its writing (a full disk): try it without
            log.debug("optimising %s into the cache failed (%s)", path, first_line(exc))
            kept.discard(partial)
        else:
            kept.store(partial)
            return session
    try:
        return ort.InferenceSession(source, _options(ort, threads, ort.GraphOptimizationLevel.ORT_ENABLE_ALL),
                                    providers=providers)
    except Exception as exc:  # ORT raises several unrelated types for unreadable models
        raise UserError(f"'{path}' is not a usable ONNX graph ({first_line(exc)}); re-export it") from None


class Sessions(Mapping):
    """An engine's sessions by role: those it needs at once opened side by side (each session's graph
    optimisation is a C++ pass that releases the GIL: the four nano graphs took 0.54 s side by side
    against 0.65 s one after the other, benchmarks/RESULTS.md), the others on first use. A
    one-target `track` that never loses its target never runs the batched search graph: unopened,
    it costs neither its set-up before the first result nor its memory (benchmarks/RESULTS.md)."""

    def __init__(self, roles: Sequence[str], opener: Callable[[str], Any], later: Sequence[str] = ()) -> None:
        self._roles, self._open = tuple(roles), opener
        self._lock = threading.Lock()
        now = [role for role in self._roles if role not in later]
        with ThreadPoolExecutor(max_workers=max(len(now), 1)) as pool:
            self._opened = dict(zip(now, pool.map(opener, now)))

    def __getitem__(self, role: str) -> Any:
        if role not in self._roles:
            raise KeyError(role)
        with self._lock:  # one opening however many threads ask at once
            if role not in self._opened:
                self._opened[role] = self._open(role)
            return self._opened[role]

    def __contains__(self, role: object) -> bool:
        return role in self._roles  # asking does not open it (Mapping's own would, through __getitem__)

    def __iter__(self) -> Iterator[str]:
        return iter(self._roles)

    def __len__(self) -> int:
        return len(self._roles)

    def opened(self) -> list[str]:
        """The roles whose sessions are open (asking for one through the mapping opens it)."""
        with self._lock:
            return list(self._opened)
