"""Helpers for the cluster-mode tests: a real Ray cluster on this machine (`ray.cluster_utils`), kept
small for a shared 2-core box (1-CPU worker nodes, 100 MB object stores, no dashboard) and always
shut down; `siammask serve` joined to it; `siammask ctl list` per stream; resumption timing."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline_support import START_TIMEOUT_S, Serve, Subscriber, collect, eventually, free_port

BOX = [25.0, 19.0, 26.0, 19.0]       # the synthetic object on frame 0 (seed 3, 160x120)
STORE_BYTES = 100 * 2**20            # object store per node: serve moves frames over ZeroMQ, not Ray


@contextmanager
def ray_cluster(head_resources: dict | None = None) -> Iterator[tuple]:
    """Head (no CPUs: serve's driver, and any custom `head_resources`) and two worker nodes of 1 CPU."""
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False,
                                                      "object_store_memory": STORE_BYTES,
                                                      "resources": head_resources or {}})
    try:
        workers = [c.add_node(num_cpus=1, object_store_memory=STORE_BYTES) for _ in range(2)]
        c.wait_for_nodes()
        yield c, workers
    finally:
        c.shutdown()


def stream(name: str, video: Path, **extra) -> dict:
    return {"id": name, "source": str(video), "loop": True, "fps": 10.0, "boxes": [BOX], **extra}


def serve_config(streams: list[dict], weights: Path, **extra) -> dict:
    """One worker per stream (max_streams 1) of half a CPU, so one 1-CPU node can take two."""
    return {"streams": streams, "model": {"weights": str(weights), "threads": 1},
            "publish": f"tcp://127.0.0.1:{free_port()}",
            "metrics_port": 0, "log_interval_s": 0, "worker": {"num_cpus": 0.5, "max_streams": 1}, **extra}


@contextmanager
def serving_all(tmp: Path, config: dict, *args: str, **options) -> Iterator[Serve]:
    """A Serve that has published a result of every configured stream; killed if left running."""
    serve = Serve(tmp, config, *args, **options)
    try:
        for s in config["streams"]:
            collect(serve, 1, START_TIMEOUT_S, until=lambda m, name=s["id"]: m["stream"] == name)
        yield serve
    finally:
        if serve.proc.poll() is None:
            serve.kill()


def placement(serve: Serve) -> dict[str, dict]:
    """`siammask ctl list`: stream id -> its entry (worker, worker_pid, node, targets, ...)."""
    reply = serve.ctl({"cmd": "list"})
    assert reply["ok"], reply
    return {s["id"]: s for s in reply["streams"]}


def resumed_after(serve: Serve, stream_id: str, event: Callable[[], None], timeout_s: float = 60.0) -> float:
    """Seconds from `event()` to the first result of `stream_id` captured after `ctl list` shows it
    on a new inference process (a new worker_pid): ordinary drops cannot pass for the restart."""
    before = placement(serve)[stream_id]["worker_pid"]
    sub = Subscriber(serve.config["publish"])
    try:
        start = time.monotonic()
        event()
        eventually(lambda: placement(serve)[stream_id]["worker_pid"] not in (before, None), timeout_s,
                   f"stream {stream_id} on a new worker process (see {serve.log_path})", interval_s=0.05)
        moved = time.time()
        sub.wait_for(lambda m: m["stream"] == stream_id and m["capture_ts"] > moved, timeout_s,
                     f"stream {stream_id} back (see {serve.log_path})")
        return time.monotonic() - start
    finally:
        sub.close()
