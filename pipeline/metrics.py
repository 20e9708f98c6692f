"""Prometheus metrics shared by all stage processes (prometheus-client multiprocess mode: each
process writes its own files under PROMETHEUS_MULTIPROC_DIR, which must be set before this module is
first imported; the supervisor serves their sum), and the periodic one-line summary.

A process whose files the supervisor cannot read (a cluster's inference worker, which may run on
another machine) sends them instead (`own_files`, in a MetricsSnapshot event every second:
cluster.METRICS_EVERY_S), and the supervisor writes each snapshot into its folder as that process's
files (`StageMetrics.mirror`): from there on they are summed, and folded when the process dies, like
a local process's."""
from __future__ import annotations

import json
import math
import os
import struct
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import MmapedDict, _read_all_values
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
DROP_STAGES = ("capture", "inference", "sink", "publish")

STAGE_SECONDS = Histogram("siammask_stage_seconds", "Time a frame spends in each stage and hop (p50/p90/p99: "
                          "histogram_quantile)", ["stage"], buckets=BUCKETS)
LATENCY_SECONDS = Histogram("siammask_latency_seconds", "Capture to publish, per stream", ["stream"],
                            buckets=BUCKETS)
FRAMES = Counter("siammask_frames", "Frames read (stage=capture) and results published (stage=publish)",
                 ["stream", "stage"])
DROPPED = Counter("siammask_dropped_frames", "Frames dropped because the next stage was busy (newest wins)",
                  ["stream", "stage"])
QUEUE_DEPTH = Gauge("siammask_queue_depth", "Frames found waiting at the inference stage per stream",
                    ["stream"], multiprocess_mode="livemax")
REJECTED = Counter("siammask_rejected_messages", "Messages on a stream's frame socket dropped: undecodable, or "
                   "naming another stream", ["stream", "reason"])
LOST_TARGETS = Gauge("siammask_lost_targets", "Targets the tracker believes are out of view (searching for them), "
                     "per stream", ["stream"], multiprocess_mode="livesum")
REACQUIRED = Counter("siammask_reacquired_targets", "Lost targets found again, per stream", ["stream"])
RESTARTS = Counter("siammask_restarts", "Stage processes restarted after a crash or stall", ["stage"])


ARCHIVED = ("counter", "histogram")  # what outlives its process (a gauge of a dead process means nothing)
# The files a process writes, by what precedes '_PID.db' in their names (gauges add their mode).
KINDS = frozenset({*ARCHIVED, "gauge_livemax", "gauge_livesum"})
SNAPSHOT_BYTES = 16 * 2**20  # a snapshot larger than this is not sent (nor taken)
HEADER_BYTES = 8             # each file starts with how much of it is used


def own_files() -> tuple[tuple[tuple[str, int], ...], np.ndarray]:
    """This process's metrics files as they stand: (kind, size) of each and their used bytes, one
    after the other (what a MetricsSnapshot carries)."""
    folder, suffix = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]), f"_{os.getpid()}.db"
    files, parts = [], []
    for path in sorted(folder.glob(f"*{suffix}")):
        kind = path.name[:-len(suffix)]
        if kind not in KINDS:
            continue
        with open(path, "rb") as f:
            used = struct.unpack("i", f.read(4))[0]
            data = f.read(max(used, HEADER_BYTES) - 4)
        files.append((kind, 4 + len(data)))
        parts.append(struct.pack("i", 4 + len(data)) + data)
    return tuple(files), np.frombuffer(b"".join(parts), dtype=np.uint8)


def remove_own_files() -> None:
    """Remove this process's metrics files: a process that sends them (a cluster's worker) does so
    as it starts, for a dead worker of the same pid left its totals there and prometheus-client
    would resume them, and as it ends, so they do not pile up."""
    folder = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    for path in folder.glob(f"*_{os.getpid()}.db"):
        path.unlink(missing_ok=True)


def mirror_key(pid: int | None, generation: int) -> str:
    """What a snapshot's files are named by in the supervisor's folder, in place of a pid: never a
    local pid, and not another node's process of the same pid. A process that sends snapshots is
    folded by this key alone: its pid, from another node, may be a local process's too."""
    return f"{pid}-{generation}"


class StageMetrics:
    """The sum over all stage processes, past and present, of the streams still registered: the
    registry behind /metrics and the summary line.

    A process's values live in its own files (prometheus-client's multiprocess mode). When a stage
    dies, `process_died` folds its counters and histograms into one archive file per type and
    removes its files, so restarts do not pile up files; a removed stream's series leave /metrics
    at once and the archive at the next fold (`streams` names the registered ones). Folding and
    reading take one lock: a scrape never sees a dead process counted twice or not at all."""

    def __init__(self, multiproc_dir: str, streams: Callable[[], Collection[str]]) -> None:
        self.path = Path(multiproc_dir)
        self._streams = streams
        self._lock = threading.Lock()
        self._files = MultiProcessCollector(None, path=multiproc_dir)
        self.registry = CollectorRegistry()
        self.registry.register(self)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            metrics = list(self._files.collect())
        keep = set(self._streams())
        for metric in metrics:
            metric.samples = [s for s in metric.samples if "stream" not in s.labels or s.labels["stream"] in keep]
            yield metric

    def process_died(self, pid: int, generation: int, mirrored: bool = False) -> None:
        """Fold the files of a process that ended: its own (by `pid`), or, when it sent snapshots
        (`mirrored`), only those its snapshots brought: a local process of the same pid keeps its files."""
        key = mirror_key(pid, generation) if mirrored else pid
        with self._lock:
            mark_process_dead(key, str(self.path))
            for kind in ARCHIVED:
                dead = self.path / f"{kind}_{key}.db"
                if dead.exists():
                    self._fold(kind, MmapedDict.read_all_values_from_file(str(dead)))
                    dead.unlink()

    def mirror(self, pid: int, generation: int, files: object, data: object) -> None:
        """Write a snapshot of the process's files (see `own_files`) here, replacing its previous one.
        It comes from another process, maybe another machine: every file is checked as the collector
        will read it, so a snapshot that is not well-formed raises ValueError and changes nothing
        (one bad file would otherwise break every later scrape and fold)."""
        parts = _snapshot_parts(files, data)
        with self._lock:
            for kind, part in parts:
                path = self.path / f"{kind}_{mirror_key(pid, generation)}.db"
                temp = path.with_suffix(".part")  # the collector reads *.db only: never half a file
                temp.write_bytes(part)
                os.replace(temp, path)

    def stream_removed(self) -> None:
        """Rewrite the archives without the series of streams no longer registered."""
        with self._lock:
            for kind in ARCHIVED:
                archive = self.path / f"{kind}_archive.db"
                if archive.exists():
                    values = list(MmapedDict.read_all_values_from_file(str(archive)))
                    archive.unlink()
                    self._fold(kind, values)

    def _fold(self, kind: str, values: Iterable[tuple]) -> None:
        keep = set(self._streams())
        archive = MmapedDict(str(self.path / f"{kind}_archive.db"))
        try:
            for key, value, timestamp, _ in values:
                stream = json.loads(key)[2].get("stream")
                if stream is None or stream in keep:
                    before, _ = archive.read_value(key)
                    archive.write_value(key, before + value, timestamp)
        finally:
            archive.close()


def _snapshot_parts(files: object, data: object) -> list[tuple[str, bytes]]:
    """(kind, bytes) of each file of a MetricsSnapshot, or ValueError: entries are (known kind,
    size) pairs, each kind once, the sizes add up to the uint8 data, and every file parses as the
    collector reads it, with finite values no counter or histogram would go below zero with."""
    if (not isinstance(files, (tuple, list)) or not isinstance(data, np.ndarray) or data.dtype != np.uint8
            or data.ndim != 1 or data.size > SNAPSHOT_BYTES):
        raise ValueError("a metrics snapshot that is not a list of files and their bytes")
    if not all(isinstance(entry, (tuple, list)) and len(entry) == 2 and type(entry[0]) is str
               and type(entry[1]) is int for entry in files):
        raise ValueError("a metrics snapshot whose files are not (kind, size) pairs")
    kinds, sizes = [kind for kind, _ in files], [size for _, size in files]
    if (len(set(kinds)) != len(kinds) or not set(kinds) <= KINDS or any(size < HEADER_BYTES for size in sizes)
            or sum(sizes) != data.size):
        raise ValueError("a metrics snapshot with unknown or repeated files or sizes that do not add up")
    raw, parts, at = data.tobytes(), [], 0
    for kind, size in files:
        part = raw[at:at + size]
        at += size
        try:
            _check_file(part, size)
        # ValueError: bad JSON or UTF-8 too; RuntimeError: a key nested too deep (RecursionError) too
        except (ValueError, TypeError, KeyError, IndexError, RuntimeError, struct.error) as exc:
            raise ValueError(f"a metrics snapshot whose {kind} file does not parse ({exc})") from None
        parts.append((kind, part))
    return parts


def _check_file(part: bytes, size: int) -> None:
    """Read a metrics file as MultiProcessCollector will; raise on anything it would choke on."""
    if struct.unpack_from("i", part, 0)[0] != size:
        raise ValueError("it does not say its own size")
    last = 0
    for key, value, timestamp, pos in _read_all_values(part, size):
        if pos <= last:  # a negative key length walks backwards, for ever
            raise ValueError("an entry of negative length")
        last = pos
        metric, name, labels, help_text = json.loads(key)
        if not (isinstance(metric, str) and isinstance(name, str) and isinstance(help_text, str)
                and isinstance(labels, dict) and all(isinstance(v, str) for v in labels.values())):
            raise ValueError("an entry whose key is not (metric, sample, labels, help)")
        if name.endswith("_bucket"):
            float(labels["le"])
        if not (math.isfinite(value) and math.isfinite(timestamp)) or value < 0:
            raise ValueError("a value that is not finite or below zero")


class TargetFigures:
    """Per-target gauges read from the supervisor's registry at scrape time (score, presence, lost),
    and per-stream `stalled`: no per-process files, so a removed target or stream leaves /metrics at
    once. `targets` gives (stream, target, score, presence, lost) of every registered target,
    `streams` (stream, stalled) of every stream."""

    def __init__(self, targets: Callable[[], Iterable[tuple[str, int, float, float, bool]]],
                 streams: Callable[[], Iterable[tuple[str, bool]]]) -> None:
        self._targets, self._streams = targets, streams

    def collect(self) -> Iterator[Metric]:
        families = (GaugeMetricFamily("siammask_target_score", "Box score of each target's last result",
                                      labels=["stream", "target"]),
                    GaugeMetricFamily("siammask_target_presence", "Presence (0-1: how likely it is in view) "
                                      "of each target's last result", labels=["stream", "target"]),
                    GaugeMetricFamily("siammask_target_lost", "1 while the tracker believes the target is "
                                      "out of view", labels=["stream", "target"]))
        for stream, target, score, presence, lost in self._targets():
            for family, value in zip(families, (score, presence, float(lost))):
                family.add_metric([stream, str(target)], value)
        stalled = GaugeMetricFamily("siammask_stream_stalled", "1 while a stream gets no frames because its "
                                    "capture stalled or lost its node (being restarted)", labels=["stream"])
        for stream, is_stalled in self._streams():
            stalled.add_metric([stream], float(is_stalled))
        yield from (*families, stalled)


def bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus' histogram_quantile: linear inside the bucket; `buckets` = (upper bound, cumulative count)."""
    total = buckets[-1][1] if buckets else 0
    if total <= 0:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if math.isinf(upper):
                return lower
            return lower + (upper - lower) * (rank - below) / max(count - below, 1e-12)
        lower, below = upper, count
    return lower


class Figures:
    """Per-stream figures from two scrapes of the registry: results/s and reads/s over the time
    between them, latency p50/p99 of the frames published in it, drops since the start; and the
    restarts of each stage. Thread-safe; `take` more often than `min_interval_s` gives the last ones."""

    def __init__(self, reg: CollectorRegistry, min_interval_s: float = 0.0) -> None:
        self.reg, self.min_interval_s = reg, min_interval_s
        self._lock = threading.Lock()
        self._last, self._at = self._scrape(), time.monotonic()
        self._taken: tuple[dict[str, dict], dict[str, float]] = ({}, {})

    def _scrape(self) -> dict[tuple, float]:
        values = {}
        for metric in self.reg.collect():
            for s in metric.samples:
                values[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return values

    def take(self) -> tuple[dict[str, dict], dict[str, float]]:
        """({stream: {fps, read_fps, latency_p50_ms, latency_p99_ms, dropped}}, {stage: restarts})."""
        with self._lock:
            if self._taken[0] and time.monotonic() - self._at < self.min_interval_s:
                return self._taken
            now, at = self._scrape(), time.monotonic()
            (last, self._last), interval_s = (self._last, now), max(at - self._at, 1e-9)
            self._at = at
            streams = sorted({dict(k[1])["stream"] for k in now if k[0] == "siammask_frames_total"})
            restarts = {dict(k[1])["stage"]: v for k, v in now.items() if k[0] == "siammask_restarts_total"}
            self._taken = {s: self._stream(s, now, last, interval_s) for s in streams}, restarts
            return self._taken

    @staticmethod
    def _stream(stream: str, now: dict, last: dict, interval_s: float) -> dict:
        def value(values: dict, name: str, **labels: str) -> float:
            return values.get((name, tuple(sorted({"stream": stream, **labels}.items()))), 0.0)

        def rate(stage: str) -> float:
            return (value(now, "siammask_frames_total", stage=stage)
                    - value(last, "siammask_frames_total", stage=stage)) / interval_s

        buckets = sorted((float(dict(k[1])["le"]), v - last.get(k, 0.0)) for k, v in now.items()
                         if k[0] == "siammask_latency_seconds_bucket" and dict(k[1])["stream"] == stream)
        p50, p99 = (bucket_quantile(q, buckets) for q in (0.5, 0.99))
        return {"fps": rate("publish"), "read_fps": rate("capture"),
                "latency_p50_ms": None if p50 is None else p50 * 1000,
                "latency_p99_ms": None if p99 is None else p99 * 1000,
                "dropped": {st: value(now, "siammask_dropped_frames_total", stage=st) for st in DROP_STAGES}}


class SummaryLine:
    """Turns two scrapes of the registry into 'stream fps, latency p50/p99, drops per stage'."""

    def __init__(self, reg: CollectorRegistry) -> None:
        self.figures = Figures(reg)

    def line(self, paused: Collection[str] = ()) -> str:
        """Rates over the time since the previous line; drop counts since the start; a paused
        stream says so instead of 0 fps."""
        streams, restarts = self.figures.take()
        parts = [self._stream(s, f, s in paused) for s, f in streams.items()]
        if restarts:
            parts.append("restarts " + " ".join(f"{k}={v:g}" for k, v in sorted(restarts.items())))
        return " | ".join(parts) or "no frames yet"

    @staticmethod
    def _stream(stream: str, f: dict, paused: bool) -> str:
        latency = ("latency n/a" if f["latency_p50_ms"] is None else
                   f"latency p50 {f['latency_p50_ms']:.0f} ms p99 {f['latency_p99_ms']:.0f} ms")
        drops = " ".join(f"{st}={n:g}" for st, n in f["dropped"].items())
        if paused:
            return f"{stream} paused, dropped {drops}"
        return f"{stream} {f['fps']:.1f} fps (read {f['read_fps']:.1f}), {latency}, dropped {drops}"


def observe_stages(stamps: dict[str, float], stages: Iterable[tuple[str, str, str]]) -> dict[str, float]:
    """Per-stage durations (ms) from a message's timestamps; each also goes into STAGE_SECONDS."""
    out = {}
    for name, start, end in stages:
        if start in stamps and end in stamps:
            seconds = max(0.0, stamps[end] - stamps[start])
            STAGE_SECONDS.labels(name).observe(seconds)
            out[name] = round(seconds * 1000, 3)
    return out
