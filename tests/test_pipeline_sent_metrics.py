"""Metrics a process sends instead of leaving them where the supervisor reads (a cluster's worker):
a real process with a metrics folder of its own counts, snapshots its files (metrics.own_files) and
sends them over a real ZeroMQ socket as a MetricsSnapshot; the supervisor's StageMetrics writes
them into its folder (`mirror`), serves them, and folds them when the process dies, as it does a
local process's files. (The same over a Ray cluster, end to end: tests/test_pipeline_cluster.py.)"""
from __future__ import annotations

import ast
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import zmq

from siammask.pipeline.messages import MetricsSnapshot, recv
from siammask.pipeline.metrics import StageMetrics

GENERATION = 5
WORKER = """
import os, sys, zmq
from siammask.pipeline.messages import MetricsSnapshot, send
from siammask.pipeline.metrics import DROPPED, QUEUE_DEPTH, own_files
DROPPED.labels("a", "inference").inc(7)
QUEUE_DEPTH.labels("a").set(3)
files, data = own_files()
ctx = zmq.Context()
sock = ctx.socket(zmq.PUSH)
sock.connect(sys.argv[1])
assert send(sock, MetricsSnapshot(generation=5, files=files), data, block=True)
sock.close(linger=10000)
ctx.term()  # waits for the message to leave: an exit without it may lose it
print(os.getpid())
"""


@pytest.fixture
def folders():
    base = Path(tempfile.mkdtemp(prefix="sent-", dir="/tmp"))  # short: an ipc path
    (base / "worker").mkdir()
    (base / "supervisor").mkdir()
    yield base
    subprocess.run(["rm", "-rf", str(base)], check=True)


def samples(metrics: StageMetrics) -> dict[tuple, float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for metric in metrics.registry.collect() for s in metric.samples}


DROPS = ("siammask_dropped_frames_total", (("stage", "inference"), ("stream", "a")))
DEPTH = ("siammask_queue_depth", (("stream", "a"),))


def sent_snapshot(folders: Path) -> tuple[int, MetricsSnapshot, np.ndarray]:
    """What a worker process with its own metrics folder sends: its pid, the snapshot, the bytes."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PULL)
    sock.bind(f"ipc://{folders}/events")
    try:
        done = subprocess.run([sys.executable, "-c", WORKER, f"ipc://{folders}/events"], capture_output=True,
                              text=True, timeout=120,
                              env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folders / "worker")})
        assert done.returncode == 0, done.stderr
        assert sock.poll(30_000)
        msg, data = recv(sock)
    finally:
        sock.close(linger=0)
        ctx.term()
    return int(done.stdout), msg, data


def test_a_snapshot_sent_over_a_socket_is_served_and_folded_when_its_process_dies(folders):
    pid, msg, data = sent_snapshot(folders)
    assert isinstance(msg, MetricsSnapshot) and {kind for kind, _ in msg.files} == {"counter", "gauge_livemax"}
    metrics = StageMetrics(str(folders / "supervisor"), lambda: ("a",))
    assert DROPS not in samples(metrics)
    metrics.mirror(pid, GENERATION, msg.files, data)
    got = samples(metrics)
    assert (got[DROPS], got[DEPTH]) == (7.0, 3.0)
    assert not list((folders / "supervisor").glob(f"*_{pid}.db"))  # the numbers came over the socket
    metrics.mirror(pid, GENERATION, msg.files, data)  # the next snapshot replaces it: nothing counts twice
    assert samples(metrics)[DROPS] == 7.0
    metrics.process_died(pid, GENERATION, mirrored=True)
    got = samples(metrics)
    assert got[DROPS] == 7.0 and DEPTH not in got  # the counter kept in the archive, the gauge of a dead process gone
    assert sorted(p.name for p in (folders / "supervisor").iterdir()) == ["counter_archive.db"]


FIRST_ENTRY = 8  # the first file's first entry, after its header


def value_at(data: np.ndarray) -> int:
    """Where the value of the first file's first entry lies (after its key, padded to 8 bytes)."""
    at = FIRST_ENTRY
    key_len = int(np.frombuffer(data[at:at + 4].tobytes(), dtype=np.int32)[0])
    return at + 4 + key_len + (8 - (key_len + 4) % 8)


def changed(msg: MetricsSnapshot, data: np.ndarray, change: str) -> tuple[object, object]:
    files, data = list(msg.files), data.copy()
    if change == "unknown kind":
        files[0] = ("../../escape", files[0][1])
    elif change == "sizes":
        files[0] = (files[0][0], files[0][1] + 8)
    elif change == "header":
        data[:4] = np.frombuffer(np.int32(10**6).tobytes(), dtype=np.uint8)
    elif change == "size not an int":
        files[0] = (files[0][0], str(files[0][1]))
    elif change == "not pairs":
        files[0] = files[0][0]
    elif change == "repeated kind":
        files = [files[0], files[0]]
        data = np.concatenate([data[:files[0][1]], data[:files[0][1]]])
    elif change == "entry length":  # a valid header, a key said to run past the file
        at = FIRST_ENTRY
        data[at:at + 4] = np.frombuffer(np.int32(10**5).tobytes(), dtype=np.uint8)
    elif change == "negative entry length":
        at = FIRST_ENTRY
        data[at:at + 4] = np.frombuffer(np.int32(-28).tobytes(), dtype=np.uint8)
    elif change in ("nan", "negative"):
        at = value_at(data)
        data[at:at + 8] = np.frombuffer(np.float64("nan" if change == "nan" else -7).tobytes(), dtype=np.uint8)
    elif change == "key":
        at = FIRST_ENTRY + 4
        data[at] = ord("{")
    elif change == "float data":
        data = data.astype(np.float64)
    return tuple(files), data


CHANGES = ["unknown kind", "sizes", "header", "size not an int", "not pairs", "repeated kind", "entry length",
           "negative entry length", "nan", "negative", "key", "float data"]


@pytest.mark.parametrize("change", CHANGES)
def test_a_snapshot_that_is_not_well_formed_changes_nothing(folders, change):
    pid, msg, data = sent_snapshot(folders)
    assert msg.files[0][0] == "counter"  # the first file's first entry is the counter of drops
    files, bad = changed(msg, data, change)
    metrics = StageMetrics(str(folders / "supervisor"), lambda: ("a",))
    with pytest.raises(ValueError, match="metrics snapshot"):
        metrics.mirror(pid, GENERATION, files, bad)
    assert list((folders / "supervisor").iterdir()) == []
    assert DROPS not in samples(metrics)
    metrics.mirror(pid, GENERATION, msg.files, data)  # a good one after it is taken, and folds
    metrics.process_died(pid, GENERATION, mirrored=True)
    assert samples(metrics)[DROPS] == 7.0


def test_the_supervisor_counts_a_bad_snapshot_logs_it_once_and_goes_on(folders, caplog):
    """The supervisor's handler, given a snapshot that does not parse, keeps the worker's previous
    numbers, counts it, logs it once, and takes the next good one."""
    from types import SimpleNamespace

    from siammask.pipeline.children import Child
    from siammask.logs import LOGGER
    from siammask.pipeline.handlers import Handlers

    pid, msg, data = sent_snapshot(folders)
    metrics = StageMetrics(str(folders / "supervisor"), lambda: ("a",))
    stages = SimpleNamespace(children=SimpleNamespace(metrics=metrics))
    handlers = Handlers(None, None, stages, None, None)
    child = Child("inference 0", "inference", start=print, process=SimpleNamespace(pid=pid), generation=GENERATION)
    handlers.on_metrics(child, msg, data)
    files, bad = changed(msg, data, "size not an int")
    with caplog.at_level("INFO", logger=LOGGER):  # the project's logger: an earlier test may have set its level
        for _ in range(3):
            handlers.on_metrics(child, MetricsSnapshot(generation=GENERATION, files=files), bad)
    assert handlers.rejected_snapshots == 3
    assert sum("dropped a metrics snapshot" in r.getMessage() for r in caplog.records) == 1
    assert samples(metrics)[DROPS] == 7.0


STALE_WORKER = """
import os, sys
from pathlib import Path
from prometheus_client.mmap_dict import MmapedDict
from siammask.pipeline.metrics import DROPPED, own_files
# a dead worker of this pid left its totals in the folder
key = '["siammask_dropped_frames", "siammask_dropped_frames_total", {"stage": "inference", "stream": "a"}, "d"]'
stale = MmapedDict(str(Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]) / f"counter_{os.getpid()}.db"))
stale.write_value(key, 5.0, 0.0)
stale.close()
from siammask.pipeline.config import ModelConfig
from siammask.pipeline.inference import InferenceSpec, StageSpec, run_inference
from siammask.pipeline.transport import LinkSpec
link = LinkSpec("ipc:///nowhere", "ipc:///nowhere", "ipc:///nowhere", 1, 1, None)
try:  # weights that do not exist: the stage ends at once, as a worker that cannot load its model
    stage = StageSpec((), (), 5, False, metrics_every_s=1.0)
    run_inference(InferenceSpec(ModelConfig(weights="missing.pth"), stage, link))
except SystemExit:
    pass
print(sorted(p.name for p in Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).iterdir()))
DROPPED.labels("a", "inference").inc(1)  # what this worker counts from here on
files, data = own_files()
sys.stdout.write(data.tobytes().hex() + " " + repr(files))
"""


def test_a_worker_does_not_resume_a_dead_worker_of_its_pid_and_leaves_no_files(folders):
    done = subprocess.run([sys.executable, "-c", STALE_WORKER], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folders / "worker")})
    assert done.returncode == 0, done.stderr
    left, sent = done.stdout.splitlines()
    assert left == "[]"  # the stale file gone, and the stage's own gone with it
    hex_data, files = sent.split(" ", 1)
    metrics = StageMetrics(str(folders / "supervisor"), lambda: ("a",))
    metrics.mirror(1, GENERATION, ast.literal_eval(files), np.frombuffer(bytes.fromhex(hex_data), dtype=np.uint8))
    assert samples(metrics)[DROPS] == 1.0  # not 5 + 1
