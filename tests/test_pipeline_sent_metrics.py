"""Metrics a process sends instead of leaving them where the supervisor reads (a cluster's worker):
a real process with a metrics folder of its own counts, snapshots its files (metrics.own_files) and
sends them over a real ZeroMQ socket as a MetricsSnapshot; the supervisor's StageMetrics writes
them into its folder (`mirror`), serves them, and folds them when the process dies, as it does a
local process's files. (The same over a Ray cluster, end to end: tests/test_pipeline_cluster.py.)"""
from __future__ import annotations

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
sock = zmq.Context().socket(zmq.PUSH)
sock.connect(sys.argv[1])
assert send(sock, MetricsSnapshot(generation=5, files=files), data, block=True)
sock.close(linger=10000)
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
    metrics.process_died(pid, GENERATION)
    got = samples(metrics)
    assert got[DROPS] == 7.0 and DEPTH not in got  # the counter kept in the archive, the gauge of a dead process gone
    assert sorted(p.name for p in (folders / "supervisor").iterdir()) == ["counter_archive.db"]


@pytest.mark.parametrize("change", ["unknown kind", "sizes", "header"])
def test_a_snapshot_that_is_not_well_formed_changes_nothing(folders, change):
    pid, msg, data = sent_snapshot(folders)
    files, data = list(msg.files), data.copy()
    if change == "unknown kind":
        files[0] = ("../../escape", files[0][1])
    elif change == "sizes":
        files[0] = (files[0][0], files[0][1] + 8)
    else:
        data[:4] = np.frombuffer(np.int32(10**6).tobytes(), dtype=np.uint8)
    metrics = StageMetrics(str(folders / "supervisor"), lambda: ("a",))
    with pytest.raises(ValueError, match="metrics snapshot"):
        metrics.mirror(pid, GENERATION, tuple(files), data)
    assert list((folders / "supervisor").iterdir()) == []
    assert DROPS not in samples(metrics)
