"""`siammask serve --cluster` on a real Ray cluster of three nodes on this machine (a head without
CPUs, where serve's driver joins, and two worker nodes of one CPU each): streams spread over both
worker nodes, a removed node's streams come back on the other with the same target ids, and SIGINT
on a serve that started its own cluster leaves no Ray process behind.

One serve on the three-node cluster runs the other tests in order: spread, pause, a new worker,
node removal, a killed worker. The lite model has random
weights: tracking quality means nothing here; placement, ids and resumption do."""
from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

from pipeline_support import (START_TIMEOUT_S, Serve, Subscriber, cmdline, collect, descendants, free_port,
                              processes_naming, survivors)

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402 - only once Ray is known to be there

pytestmark = pytest.mark.slow

BOX = [25.0, 19.0, 26.0, 19.0]       # the synthetic object on frame 0 (seed 3, 160x120)
STORE_BYTES = 100 * 2**20            # object store per node: serve moves frames over ZeroMQ, not Ray
RESUME_LIMIT_S = 10.0                # the bound: a removed node's streams publish again within this


def node_args(**extra) -> dict:
    return {"object_store_memory": STORE_BYTES, **extra}


def stream(name: str, video: Path) -> dict:
    return {"id": name, "source": str(video), "loop": True, "fps": 10.0, "boxes": [BOX]}


def test_sigint_stops_a_cluster_started_by_serve(tmp_path, synthetic_video, lite):
    """`--cluster ray` starts Ray here; Ctrl-C (SIGINT to serve's whole process group, as a terminal
    sends it: Ray's own processes get it too) stops serve, its stages and every Ray process."""
    config = {"streams": [stream("a", synthetic_video)], "model": {"weights": str(lite), "threads": 1},
              "publish": f"tcp://127.0.0.1:{free_port()}", "control": f"tcp://127.0.0.1:{free_port()}",
              "metrics_port": 0, "log_interval_s": 0, "worker": {"num_cpus": 0.5}}
    serve = Serve(tmp_path, config, "--cluster", "ray", prefix=("setsid",))  # its own group, as in a terminal
    try:
        collect(serve, 3, START_TIMEOUT_S)
        tree = descendants(serve.proc.pid)
        raylet = next(cmdline(p) for p in tree if "raylet" in cmdline(p))
        everything = {**tree, **processes_naming(re.search(r"session_[\w.-]+", raylet).group())}
        assert len(everything) >= 4  # at least the stages, gcs_server and raylet
        os.killpg(serve.proc.pid, signal.SIGINT)
        assert serve.proc.wait(60) == 0
        assert survivors(everything, grace_s=15.0) == []
    finally:
        if serve.proc.poll() is None:
            serve.kill()


@pytest.fixture(scope="module")
def cluster():
    """Head (no CPUs: serve's driver, and the camera host of stream 'a') and two worker nodes of
    1 CPU; shut down at the end."""
    c = Cluster(initialize_head=True, head_node_args=node_args(num_cpus=0, include_dashboard=False,
                                                               resources={"camhost1": 1}))
    workers = [c.add_node(**node_args(num_cpus=1)) for _ in range(2)]
    c.wait_for_nodes()
    try:
        yield c, workers
    finally:
        c.shutdown()


@pytest.fixture(scope="module")
def served(tmp_path_factory, synthetic_video, lite, cluster):
    """Two streams, one per worker (max_streams 1); half a CPU each, so one node can take both."""
    tmp = tmp_path_factory.mktemp("cluster")
    config = {
        "streams": [{**stream("a", synthetic_video), "resources": {"camhost1": 1}}, stream("b", synthetic_video)],
        "model": {"weights": str(lite), "threads": 1},
        "publish": f"tcp://127.0.0.1:{free_port()}", "control": f"tcp://127.0.0.1:{free_port()}",
        "metrics_port": 0, "log_interval_s": 0,
        "cluster": cluster[0].address,
        "worker": {"num_cpus": 0.5, "max_streams": 1},
    }
    serve = Serve(tmp, config)
    try:
        collect(serve, 1, START_TIMEOUT_S, until=lambda m: m["stream"] == "a")
        collect(serve, 1, START_TIMEOUT_S, until=lambda m: m["stream"] == "b")
        yield serve
    finally:
        if serve.proc.poll() is None:
            serve.kill()


def placement(serve: Serve) -> dict[str, dict]:
    """`siammask ctl list`: stream id -> its entry (worker, node, targets)."""
    reply = serve.ctl({"cmd": "list"})
    assert reply["ok"], reply
    return {s["id"]: s for s in reply["streams"]}


def test_streams_spread_over_both_worker_nodes(served, cluster):
    c, workers = cluster
    where = placement(served)
    assert {where["a"]["worker"], where["b"]["worker"]} == {"inference 0", "inference 1"}
    assert {where["a"]["node"], where["b"]["node"]} == {n.node_id for n in workers}
    assert where["a"]["capture_node"] == c.head_node.node_id and "capture_node" not in where["b"]
    msgs = collect(served, 20)
    assert {m["stream"] for m in msgs} == {"a", "b"}
    assert all([t["target"] for t in m["targets"]] == [0] for m in msgs)


def test_a_pinned_capture_pauses_and_resumes(served):
    """The hold flag reaches the capture on its camera host: a paused file stops, then goes on."""
    assert served.ctl({"cmd": "pause", "stream": "a"})["ok"]
    time.sleep(1.0)  # frames already in flight arrive as paused
    sub = Subscriber(served.config["publish"])
    try:
        end, seen = time.monotonic() + 3.0, []
        while (left := end - time.monotonic()) > 0:
            if (m := sub.recv(left)) is not None:
                seen.append(m["stream"])
    finally:
        sub.close()
    assert "b" in seen and "a" not in seen
    assert served.ctl({"cmd": "resume", "stream": "a"})["ok"]
    back = collect(served, 1, until=lambda m: m["stream"] == "a")[-1]
    assert [t["target"] for t in back["targets"]] == [0]


def test_a_stream_added_when_every_worker_is_full_gets_a_new_worker(served, synthetic_video):
    reply = served.ctl({"cmd": "add_stream", "stream": {**stream("c", synthetic_video)}})
    assert reply == {"ok": True, "stream": "c", "targets": [0]}
    first = collect(served, 1, START_TIMEOUT_S, until=lambda m: m["stream"] == "c")[-1]
    assert [t["target"] for t in first["targets"]] == [0]
    assert placement(served)["c"]["worker"] == "inference 2"
    assert served.ctl({"cmd": "remove_stream", "stream": "c"})["ok"]
    deadline = time.monotonic() + 30.0
    while "inference 2 holds no stream any more; stopped" not in served.log():  # its half CPU is free again
        assert time.monotonic() < deadline, served.log()
        time.sleep(0.2)


def resumed_after(serve: Serve, stream: str, event, timeout_s: float = 60.0) -> float:
    """Seconds from `event()` to the first result of `stream` from a new inference process (a new
    origin shows as inference drops, the gap the sink attributes to the restart)."""
    sub = Subscriber(serve.config["publish"])
    try:
        start = time.monotonic()
        event()
        sub.wait_for(lambda m: m["stream"] == stream and m["dropped"]["inference"] > 0, timeout_s,
                     f"stream {stream} back (see {serve.log_path})")
        return time.monotonic() - start
    finally:
        sub.close()


def test_removing_a_node_moves_its_streams_to_the_other(served, cluster, record_property):
    c, workers = cluster
    before = placement(served)
    gone = next(n for n in workers if n.node_id == before["b"]["node"])
    stays = next(n for n in workers if n is not gone)
    resume_s = resumed_after(served, "b", lambda: c.remove_node(gone))
    record_property("resume_s", round(resume_s, 2))
    print(f"\nstream b resumed {resume_s:.1f} s after its node was removed")
    after = placement(served)
    assert after["a"]["node"] == after["b"]["node"] == stays.node_id
    assert [t["id"] for t in after["b"]["targets"]] == [t["id"] for t in before["b"]["targets"]] == [0]
    assert {tuple(t["target"] for t in m["targets"]) for m in collect(served, 10)} == {(0,)}
    assert "lost its actor" in served.log()
    assert resume_s <= RESUME_LIMIT_S, f"resumed after {resume_s:.1f} s"


def test_a_killed_worker_comes_back_with_its_streams(served):
    before = placement(served)
    resume_s = resumed_after(served, "a", lambda: os.kill(before["a"]["worker_pid"], signal.SIGKILL))
    print(f"\nstream a resumed {resume_s:.1f} s after its worker process was killed")
    after = placement(served)
    assert after["a"]["worker"] == before["a"]["worker"] and after["a"]["worker_pid"] != before["a"]["worker_pid"]
    assert [t["id"] for t in after["a"]["targets"]] == [0]
    assert after["b"]["worker_pid"] == before["b"]["worker_pid"]  # the other worker went on untouched
    assert f"{before['a']['worker']} was killed by signal 9; starting it again" in served.log()
    assert {tuple(t["target"] for t in m["targets"]) for m in collect(served, 10)} == {(0,)}
