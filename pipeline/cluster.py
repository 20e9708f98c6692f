"""Cluster mode (`siammask serve --cluster`): start or join a Ray cluster, and the launcher that
puts the supervisor's stages on its nodes. Only cluster mode imports this module, and with it Ray."""
from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from typing import Any

import ray

from siammask.errors import UserError
from siammask.threads import BLAS_ENV

from .capture import CaptureSpec, run_capture
from .config import PipelineConfig, StreamConfig
from .endpoints import RunDir, check_bind_endpoint, check_loopback_stages, check_stage_endpoint, late_node
from .hosts import LOOPBACK, Held, Placement, RayProcess, Shared, node_address
from .inference import InferenceSpec, run_inference
from .launch import LocalLauncher, StageProcess

LOCAL_OBJECT_STORE_BYTES = 100 * 2**20   # serve sends frames over ZeroMQ, not through Ray's object store
PLACE_TIMEOUT_S = 30.0                   # a pinned capture's node must be found in this time
PASSED_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", BLAS_ENV)  # thread limits the stages get on every node
METRICS_EVERY_S = 1.0                    # how often a worker sends its metrics (metrics.own_files)


def connect(address: str) -> str:
    """Start a Ray cluster on this machine ('ray') or join one; the driver node's address, where the
    supervisor binds the sockets that stages on other nodes connect to."""
    try:
        if address == "ray":
            ray.init(address="local", include_dashboard=False, object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                     logging_level=logging.WARNING)
        else:
            ray.init(address=address, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise UserError(f"cannot start or join the Ray cluster '{address}': {str(exc).splitlines()[0]}") from None
    return node_address(ray.get_runtime_context().get_node_id())


def disconnect() -> None:
    """Leave the cluster; a cluster this serve started stops with it."""
    ray.shutdown()


def ray_runs_as_us(nodes: list[dict[str, Any]]) -> bool:
    """Whether every node's processes run as serve's user (the owner of its raylet's socket): only
    then can they reach the ipc:// files in serve's 0700 run folder."""
    try:
        return all(os.stat(n["RayletSocketName"]).st_uid == os.getuid() for n in nodes)
    except (OSError, KeyError):
        return False


class RayLauncher:
    """The supervisor's launcher on a cluster: inference workers are Ray actors (each a child of the
    supervisor, holding up to `worker.max_streams` streams, one per node while nodes have room); a
    capture with `resources` runs on a node that offers them; the sink and the other captures stay
    beside the supervisor. When every node of the cluster is on this machine as serve starts (one
    serve started itself with `--cluster ray`, or a test cluster), run by serve's user, the stages'
    sockets are ipc:// in the run folder, as without a cluster, out of other local users' reach;
    Ray run by another user gets tcp:// on loopback, open to every local user, so only with CURVE keys;
    otherwise they are tcp:// on the driver node's address (a pinned capture's frames socket: on its
    node's own), which needs CURVE keys."""

    def __init__(self, run_dir: RunDir, cfg: PipelineConfig, address: str) -> None:
        self.local = LocalLauncher(run_dir)
        self.cfg, self.driver_address = cfg, address
        nodes = [n for n in ray.nodes() if n["Alive"]]
        one_machine = all(n["NodeManagerAddress"] == address for n in nodes)
        self.address = LOOPBACK if one_machine else address
        check_bind_endpoint(f"tcp://{self.address}:*", "with nodes on other machines, the stages' sockets", cfg.curve)
        self.env = {name: os.environ[name] for name in PASSED_ENV if name in os.environ}
        self.env["PROMETHEUS_MULTIPROC_DIR"] = str(run_dir.sub("metrics"))
        # a worker sends its metrics over the events channel, wherever it runs: its own files are
        # in a folder the supervisor does not read (on this machine too, or they would count twice)
        self.worker_env = {**self.env, "PROMETHEUS_MULTIPROC_DIR": str(run_dir.sub("worker-metrics"))}
        self.metrics_every_s = METRICS_EVERY_S
        self.private = run_dir.endpoint if one_machine and ray_runs_as_us(nodes) else None  # see above
        if one_machine and self.private is None:
            check_loopback_stages(cfg.curve)
        self.pinned: dict[str, RayProcess] = {}   # stream -> its capture's latest process (the host stays)
        self.max_streams = cfg.worker.max_streams

    def worker_name(self, number: int) -> str:
        return f"inference {number}"

    def endpoint(self, name: str) -> str:
        return self.private(name) if self.private else self.local.hold(self.address)

    def listener(self, endpoint: str) -> socket.socket | None:
        """Of the stages beside the supervisor (a pinned capture's host holds its own)."""
        return self.local.listener(endpoint)

    def supervisor_endpoint(self, name: str) -> str:
        return self.private(name) if self.private else f"tcp://{self.address}:*"

    def frames_endpoint(self, stream: StreamConfig) -> str:
        """A pinned capture's host is placed now (its endpoint is on that node: a port the host
        holds) and kept for the stream's life: its camera is there."""
        if not stream.resources:
            return self.endpoint("frames")
        host = RayProcess(Placement(resources=stream.resources), self.env)
        try:
            private = self.private and self.private("frames")
            endpoint = ray.get(host.host.listen.remote(self.driver_address, private), timeout=PLACE_TIMEOUT_S)
            check_stage_endpoint(endpoint, f"stream '{stream.id}': its capture", self.address == LOOPBACK,
                                 self.cfg.curve)
        except ray.exceptions.GetTimeoutError:
            ray.kill(host.host)
            raise UserError(f"stream '{stream.id}': no node of the cluster offers resources {stream.resources} "
                            f"(waited {PLACE_TIMEOUT_S:g} s); start one with ray start --resources") from None
        except UserError:
            ray.kill(host.host)
            raise
        self.pinned[stream.id] = host
        return endpoint

    def spawn(self, target: Callable[..., None], args: tuple) -> StageProcess:
        return self.local.spawn(target, args)

    def spawn_capture(self, spec: CaptureSpec, counter: Any, hold: Any) -> StageProcess:
        host = self.pinned.get(spec.stream.id)
        if host is None:
            return self.local.spawn_capture(spec, counter, hold)
        process = self.pinned[spec.stream.id] = host.next_on_host()
        process.start(run_capture, (spec, Shared("counter", "q", counter.value), Shared("hold", "b", hold.value),
                                    Held()))
        return process

    def inference(self, spec: InferenceSpec) -> StageProcess:
        """A worker's actor, placed now; its stage starts, from `spec` as it is, as soon as Ray has
        placed it: its sockets connect to the supervisor's. On a cluster of one machine a node that
        joined later cannot reach them, so the stage does not start there (`refusal`)."""
        process = RayProcess(Placement(self.cfg.worker.num_cpus, self.cfg.worker.num_gpus, spread=True),
                             self.worker_env)
        process.start(run_inference, (spec,), only_on=self.driver_address if self.address == LOOPBACK else None)
        return process

    def refusal(self, process: StageProcess) -> str | None:
        if not (isinstance(process, RayProcess) and process.refused()):
            return None
        return late_node("an inference worker", (process.where() or {}).get("address", "another machine"))

    def shared_changed(self, process: StageProcess, hold: Any) -> None:
        if isinstance(process, RayProcess):
            process.set_value("hold", hold.value)

    def placement(self, worker: str | None, process: StageProcess | None,
                  capture: StageProcess | None) -> dict[str, Any]:
        """The worker holding a stream and its node (None while Ray has not placed it)."""
        where = process.where() if isinstance(process, RayProcess) else None
        out = {"worker": worker, "worker_pid": process.pid if process else None,
               "node": where and where["node"], "node_address": where and where["address"]}
        if isinstance(capture, RayProcess):
            out["capture_node"] = (capture.where() or {}).get("node")
        return out

    def forget(self, stream: str, endpoint: str) -> None:
        self.local.release(endpoint)
        host = self.pinned.pop(stream, None)
        if host is not None:
            ray.kill(host.host)  # with the port it held

    def close(self) -> None:
        for host in self.pinned.values():
            ray.kill(host.host)
        self.pinned.clear()
        self.local.close()
