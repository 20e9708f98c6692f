"""Cluster mode's failures, each on a Ray cluster of its own: a worker node removed from a real
three-node cluster (its streams come back on the other node with the same target ids; the test
prints and records the resume time), and Ctrl-C on a serve that started its own cluster (nothing of
serve or Ray is left running)."""
from __future__ import annotations

import os
import re
import signal

import pytest

from cluster_support import placement, ray_cluster, resumed_after, serve_config, serving_all, stream
from pipeline_support import cmdline, collect, descendants, processes_naming, survivors

pytest.importorskip("ray")
pytestmark = pytest.mark.slow

RESUME_LIMIT_S = 45.0  # a liveness bound for a loaded 2-core box (11.7 s was seen at load 4.6-7); the resume
                       # time (5.1 s at load 2, 9.0 s at load 7 here) is printed and recorded, not a speed check


def test_removing_a_node_moves_its_streams_to_the_other(tmp_path, synthetic_video, lite, record_property):
    with ray_cluster() as (c, workers):
        config = serve_config([stream("a", synthetic_video), stream("b", synthetic_video)], lite, cluster=c.address)
        with serving_all(tmp_path, config) as serve:
            before = placement(serve)
            gone = next(n for n in workers if n.node_id == before["b"]["node"])
            stays = next(n for n in workers if n is not gone)
            resume_s = resumed_after(serve, "b", lambda: c.remove_node(gone))
            record_property("resume_s", round(resume_s, 2))
            print(f"\nstream b resumed {resume_s:.1f} s after its node was removed")
            after = placement(serve)
            assert after["b"]["node"] == stays.node_id and after["b"]["worker"] == before["b"]["worker"]
            assert [t["id"] for t in after["b"]["targets"]] == [t["id"] for t in before["b"]["targets"]] == [0]
            assert {tuple(t["target"] for t in m["targets"]) for m in collect(serve, 10)} == {(0,)}
            assert f"{before['b']['worker']} lost its actor" in serve.log()
    assert resume_s <= RESUME_LIMIT_S, f"resumed after {resume_s:.1f} s"


def test_sigint_stops_a_cluster_started_by_serve(tmp_path, synthetic_video, lite):
    """`--cluster ray` starts Ray here; Ctrl-C (SIGINT to serve's whole process group, as a terminal
    sends it: Ray's own processes get it too) stops serve, its stages and every Ray process."""
    config = serve_config([stream("a", synthetic_video)], lite)
    with serving_all(tmp_path, config, "--cluster", "ray", prefix=("setsid",)) as serve:  # its own group
        tree = descendants(serve.proc.pid)
        raylet = next(cmdline(p) for p in tree if "raylet" in cmdline(p))
        everything = {**tree, **processes_naming(re.search(r"session_[\w.-]+", raylet).group())}
        assert len(everything) >= 4  # at least the stages, gcs_server and raylet
        os.killpg(serve.proc.pid, signal.SIGINT)
        assert serve.proc.wait(60) == 0
        assert survivors(everything, grace_s=15.0) == []
