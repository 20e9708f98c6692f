"""A tcp port that a stage binds, chosen before the stage runs (cluster mode's sink results and local
frames when stage sockets are tcp; a pinned capture's frames on its node): it was a port found free,
written into the other stages' specs, then bound by the stage, so another program could bind it in
between and the stage failed to start ("cannot bind ... Address already in use"). Now whoever
chooses the port holds it, listening, until the endpoint goes (endpoints.hold_tcp), and each process
of the stage takes that socket over (ZeroMQ's USE_FD): no one else can bind the port, and a
restarted stage gets the same one. Real ZeroMQ sockets, a real sink and capture process."""
from __future__ import annotations

import dataclasses
import errno
import json
import multiprocessing

import pytest
import zmq

from pipeline_support import START_TIMEOUT_S, eventually
from siammask.pipeline.capture import CaptureSpec, run_capture
from siammask.pipeline.config import OutputsConfig, StreamConfig
from siammask.pipeline.launch import LocalLauncher
from siammask.pipeline.messages import FrameHeader, StreamEnd, recv, send
from siammask.pipeline.sink import SinkSpec, run_sink

LOOPBACK = "127.0.0.1"


def squat(endpoint: str) -> int:
    """Bind a ZeroMQ socket of another program at `endpoint`: 0 if it got the port, else the errno."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PULL)
    try:
        sock.bind(endpoint)
        return 0
    except zmq.ZMQError as exc:
        return exc.errno
    finally:
        sock.close(linger=0)
        ctx.term()


def next_frame(sock: zmq.Socket, run: int) -> FrameHeader:
    """The next frame header sent by capture run `run` (earlier runs' frames still queued are skipped)."""
    while sock.poll(START_TIMEOUT_S * 1000):
        header, _ = recv(sock)
        if isinstance(header, FrameHeader) and header.run == run:
            return header
    raise AssertionError(f"no frame from capture run {run} in {START_TIMEOUT_S} s")


def test_a_held_port_cannot_be_taken_and_each_sink_process_takes_it_over(own_tmpdir):
    """The sink's results socket on a held tcp port: another program's bind is refused, the sink
    binds and publishes what a connected PUSH sends, and so does the sink started after it is killed,
    on the same port, without the PUSH reconnecting elsewhere; released, the port is free again."""
    mp = multiprocessing.get_context("spawn")
    launcher = LocalLauncher(None)
    ctx = zmq.Context()
    push, sub = ctx.socket(zmq.PUSH), ctx.socket(zmq.SUB)
    shared = mp.Array("q", [-1] * 2, lock=False)
    publish_port, watching = mp.Value("i", 0, lock=False), mp.Value("i", 0, lock=False)
    endpoint = launcher.hold(LOOPBACK)
    processes = []
    try:
        assert squat(endpoint) == errno.EADDRINUSE  # the old free port was bound by whoever came first
        push.connect(endpoint)
        for restart in range(2):
            publish = f"tcp://{LOOPBACK}:{publish_port.value or '*'}"  # a restart: the port the first got
            spec = SinkSpec(endpoint, publish, OutputsConfig(), None, queue_size=2, batch=1,
                            curve=None, restart=restart)
            process = launcher.spawn(run_sink, (spec, shared, publish_port, watching, launcher.listener(endpoint)))
            processes.append(process)
            if restart == 0:
                eventually(lambda: publish_port.value or process.exitcode is not None, START_TIMEOUT_S,
                           "the sink's publish port")
                assert publish_port.value, f"the sink did not start (exit code {process.exitcode})"
                sub.connect(f"tcp://{LOOPBACK}:{publish_port.value}")
                sub.subscribe(b"")
            stream = f"s{restart}"

            def published() -> dict | None:  # sent again until the subscription has reached the sink
                assert process.exitcode is None, f"sink {restart} exited {process.exitcode}"
                send(push, StreamEnd(stream), block=True)
                return json.loads(sub.recv()) if sub.poll(500) else None

            assert eventually(published, START_TIMEOUT_S, f"a message through sink {restart}") == \
                {"stream": stream, "end": True}
            process.kill()
            process.join(30)
    finally:
        for process in processes:
            if process.exitcode is None:
                process.kill()
                process.join(30)
        push.close(linger=0)
        sub.close(linger=0)
        ctx.term()
        launcher.close()
    assert squat(endpoint) == 0


def test_a_capture_restarted_on_a_held_port_sends_from_the_same_endpoint(own_tmpdir, synthetic_video):
    """A local capture's frames socket on a held port (cluster mode, tcp stage sockets): a frame of
    each run reaches one PULL connected once; a removed stream's port is given back."""
    launcher = LocalLauncher(None)
    mp = multiprocessing.get_context("spawn")
    counter, hold = mp.Value("q", 0, lock=False), mp.Value("b", 0, lock=False)
    stream = StreamConfig("cam", str(synthetic_video), loop=True, fps=20.0)
    endpoint = launcher.hold(LOOPBACK)
    spec = CaptureSpec(stream, endpoint, queue_size=2, open_timeout_s=10.0, read_timeout_s=10.0, curve=None)
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.connect(endpoint)
    process = None
    try:
        assert squat(endpoint) == errno.EADDRINUSE
        frames = []
        for run in range(2):
            process = launcher.spawn_capture(dataclasses.replace(spec, run=run), counter, hold)
            frames.append(next_frame(pull, run).frame)
            process.kill()
            process.join(30)
    finally:
        if process is not None and process.exitcode is None:
            process.kill()
            process.join(30)
        pull.close(linger=0)
        ctx.term()
    assert frames[1] > frames[0], frames  # the counter is shared: frame ids go on across the restart
    launcher.forget("cam", endpoint)
    assert squat(endpoint) == 0
    launcher.close()


@pytest.mark.slow
def test_a_pinned_captures_host_holds_its_port_for_every_capture_it_runs(own_tmpdir, synthetic_video):
    """A pinned capture's host (a Ray actor on the node the camera is at) holds the frames port it
    names (tcp when the stage sockets cannot be ipc files): another program cannot take it, and
    the host's next capture process, after one is killed, sends from the same endpoint."""
    pytest.importorskip("ray")
    import ray

    from cluster_support import ray_cluster
    from siammask.pipeline.hosts import Held, Placement, RayProcess, Shared, node_address

    stream = StreamConfig("cam", str(synthetic_video), loop=True, fps=20.0, resources={"camhost": 1.0})
    with ray_cluster(head_resources={"camhost": 1}) as (cluster, _):
        ray.init(address=cluster.address)
        ctx = zmq.Context()
        pull = ctx.socket(zmq.PULL)
        first = RayProcess(Placement(resources=stream.resources), {})  # as RayLauncher.frames_endpoint
        try:
            driver = node_address(ray.get_runtime_context().get_node_id())
            endpoint = ray.get(first.host.listen.remote(driver, None), timeout=START_TIMEOUT_S)
            assert endpoint.startswith(f"tcp://{LOOPBACK}:"), endpoint
            assert squat(endpoint) == errno.EADDRINUSE
            pull.connect(endpoint)
            spec = CaptureSpec(stream, endpoint, queue_size=2, open_timeout_s=10.0, read_timeout_s=10.0, curve=None)
            for run in range(2):
                process = first.next_on_host()  # as RayLauncher.spawn_capture: the host stays
                process.start(run_capture, (dataclasses.replace(spec, run=run), Shared("counter", "q", 0),
                                            Shared("hold", "b", 0), Held()))
                next_frame(pull, run)
                process.kill()  # the stage process only: the host stays, with the port
                eventually(lambda: process.exitcode is not None, START_TIMEOUT_S, "the killed capture's exit")
            assert squat(endpoint) == errno.EADDRINUSE
        finally:
            pull.close(linger=0)
            ctx.term()
            ray.kill(first.host)
            ray.shutdown()
