"""A cluster stage process (hosts.RayProcess) on a real Ray cluster of this machine: one whose host
Ray cannot place (no node offers what it asks) is stopped at once, not after the stop timeout, so
SIGINT ends serve promptly while a worker waits for a node."""
from __future__ import annotations

import os
import time

import pytest

from cluster_support import ray_cluster

pytest.importorskip("ray")


def test_stopping_a_worker_ray_never_placed_does_not_wait_the_stop_timeout():
    import ray

    from siammask.pipeline.children import STOP_TIMEOUT_S, stop
    from siammask.pipeline.hosts import Placement, RayProcess

    with ray_cluster() as (cluster, _):
        ray.init(address=cluster.address)
        try:
            process = RayProcess(Placement(num_cpus=64), {})  # two 1-CPU nodes: never placed
            process.start(os.getpid, ())
            assert process.where() is None and process.pid is None
            began = time.monotonic()
            stop([process])
            # a liveness bound, generous for a loaded box: the old join waited the full 10 s
            assert time.monotonic() - began < STOP_TIMEOUT_S / 2
        finally:
            ray.shutdown()
