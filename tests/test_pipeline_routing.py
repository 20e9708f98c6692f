"""Direct routing: the supervisor binds one command pipe per inference process before the process
starts (pipeline/transport.CommandPipe), and the stage connects to it, so the endpoint is in the
process's spec wherever it runs and commands sent before the stage is up wait for it. Real ZeroMQ
sockets over ipc://, a real inference process (lite random weights) beside the test and one a
Ray actor runs; a restarted worker, a worker not ready and one whose pipe fills up, through the
supervisor's own Stages and Handlers (its loop turned by the test)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zmq

from pipeline_support import START_TIMEOUT_S, eventually
from siammask.pipeline.config import ModelConfig, PipelineConfig, StreamConfig, WorkerConfig
from siammask.pipeline.inference import InferenceSpec, StageSpec
from siammask.pipeline.launch import LocalLauncher
from siammask.pipeline.messages import Ready, RemoveTarget, Reply, SetPaused, TargetFailed, recv
from siammask.pipeline.registry import TargetRecord
from siammask.pipeline.security import Security
from siammask.pipeline.transport import COMMANDS_WAITING, CommandPipe, LinkSpec, ZmqStageLink

GENERATION = 12345


@pytest.fixture
def security():
    ctx = zmq.Context()
    sec = Security(ctx, None)
    yield sec
    sec.close()
    ctx.term()


def link_spec(commands: str, folder: Path) -> LinkSpec:
    return LinkSpec(commands, f"ipc://{folder}/events", f"ipc://{folder}/results", queue_size=4, results_hwm=8,
                    curve=None)


def received(pipe: CommandPipe, folder: Path, count: int) -> list:
    """The first `count` commands a stage that connects now gets, the pipe flushed as the
    supervisor's loop does each turn."""
    link = ZmqStageLink(link_spec(pipe.endpoint, folder))
    try:
        got: list = []

        def arrived() -> bool:
            pipe.flush()
            link.wait(50)
            got.extend(link.commands())
            return len(got) >= count

        eventually(arrived, 60.0, "the waiting commands")
        return got
    finally:
        link.close()


def test_commands_sent_before_the_stage_connects_wait_for_it_in_order(own_tmpdir, security):
    pipe = CommandPipe(security, f"ipc://{own_tmpdir}/commands")
    assert pipe.endpoint == f"ipc://{own_tmpdir}/commands"
    sent = [SetPaused(generation=GENERATION, stream="a", paused=True, req=n) for n in range(3)]
    try:
        for cmd in sent:
            assert pipe.send(cmd)  # nobody is connected: a bound PUSH takes nothing yet
        assert received(pipe, own_tmpdir, len(sent)) == sent
    finally:
        pipe.close()


def test_a_pipe_whose_process_never_connects_refuses_commands_past_its_bound(own_tmpdir, security):
    """Nobody connected: COMMANDS_WAITING commands wait, the next is refused (not silently dropped)
    and nothing that waits is lost: the caller restarts the process instead."""
    pipe = CommandPipe(security, f"ipc://{own_tmpdir}/commands")
    sent = [RemoveTarget(generation=GENERATION, stream="a", target=n) for n in range(COMMANDS_WAITING)]
    try:
        assert all(pipe.send(cmd) for cmd in sent)
        assert pipe.send(RemoveTarget(generation=GENERATION, stream="a", target=-1)) is False
        assert received(pipe, own_tmpdir, len(sent)) == sent
    finally:
        pipe.close()


@pytest.fixture
def supervisor(own_tmpdir, lite):
    """A supervisor's stages, started (its sink and one worker of stream 'a') but no loop: the test
    turns it; the worker's events come to `supervisor.test_events`."""
    from siammask.pipeline.endpoints import RunDir
    from siammask.pipeline.supervisor import Supervisor

    cfg = PipelineConfig(streams=(StreamConfig("a", "x"),), model=ModelConfig(weights=str(lite), threads=1))
    run_dir = RunDir()
    sup = Supervisor(cfg, run_dir)
    sup.test_events = events_socket(sup.security, own_tmpdir)
    sup.stages.events_endpoint = f"ipc://{own_tmpdir}/events"
    try:
        sup.stages.start()
        yield sup
    finally:
        sup.stages.children.stop_all()
        sup.test_events.close()
        sup.security.close()
        sup.ctx.term()
        run_dir.remove()


def test_a_restarted_worker_gets_a_new_pipe_at_a_new_endpoint_and_the_old_one_is_gone(supervisor):
    """The supervisor's own table restarts a worker: its new process gets a new CommandPipe bound at a
    new endpoint, and the old pipe's ipc file is gone, so no command meant for the new process can
    reach the one it replaces."""
    stages = supervisor.stages
    [child] = stages.children.of_stage("inference")
    old_pipe, old_generation = child.commands, child.generation
    old_file = Path(old_pipe.endpoint.removeprefix("ipc://"))
    assert old_file.exists()
    child.process.kill()
    stages.children.restart(child, "killed by the test")
    eventually(lambda: stages.look_after() or child.process is not None, 60, "the worker started again")
    assert child.generation != old_generation
    assert child.commands is not old_pipe and child.commands.endpoint != old_pipe.endpoint
    assert not old_file.exists() and Path(child.commands.endpoint.removeprefix("ipc://")).exists()


def test_a_pause_for_a_worker_not_ready_is_answered_at_once_and_reaches_it(supervisor):
    """A worker that has not said Ready (a cluster's not placed yet, or loading its model): `ctl
    pause` does not wait for it; the command waits in its pipe and the stage takes it first."""
    [child] = supervisor.stages.children.of_stage("inference")
    assert not child.ready  # nobody read its Ready: the supervisor's loop does not run here
    reply = supervisor.handlers.pause([b"client", b""], "a")
    assert reply == {"ok": True, "stream": "a", "paused": True} and supervisor.handlers.requests == {}
    req = supervisor.handlers.next_request  # the request the pause was
    got = reply_to(supervisor.test_events, child.commands, req)
    assert isinstance(got[0], Ready) and got[-1] == Reply(generation=child.generation, req=req, stream="a")


def test_a_worker_that_takes_no_commands_is_restarted_when_its_pipe_is_full(supervisor):
    """Its pipe refuses a command past COMMANDS_WAITING: Stages.send says the command was not taken
    (False) and restarts the worker, whose new spec comes from the registry, with a 'restarted' event."""
    stages = supervisor.stages
    [child] = stages.children.of_stage("inference")
    dead = child.process
    dead.kill()  # it takes nothing from now on; the supervisor has not looked yet
    dead.join(30)
    pause = SetPaused(stream="a", paused=True, req=0)
    taken = 0
    while taken <= 3 * COMMANDS_WAITING and stages.send(pause):  # ZeroMQ may queue some for the dead peer too
        taken += 1
    assert COMMANDS_WAITING <= taken <= 2 * COMMANDS_WAITING
    assert child.process is None and child.commands is None and child.restart_at is not None
    [event] = [e for e in supervisor.events.since(0) if e["event"] == "restarted"]
    assert event["why"] == f"took none of the {COMMANDS_WAITING} commands waiting for it"
    assert stages.send(pause) is False  # no process until its backoff passes
    eventually(lambda: stages.look_after() or child.process is not None, 60, "the worker started again")
    assert stages.send(pause) is True


def test_a_pause_that_finds_its_workers_pipe_full_is_answered_once(supervisor):
    """The pause that overflows the pipe restarts the worker: the request is answered once, by the
    restart (what waited for the worker), and `pause` returns nothing more to send."""
    [child] = supervisor.stages.children.of_stage("inference")
    child.process.kill()
    child.process.join(30)
    while child.commands.send(SetPaused(generation=child.generation, stream="a", paused=False, req=0)):
        pass  # full: the process took none
    answers: list = []
    supervisor.handlers.reply = lambda envelope, body: answers.append((envelope, json.loads(body)))
    assert supervisor.handlers.pause([b"client", b""], "a") is None
    assert answers == [([b"client", b""], {"ok": True, "stream": "a", "paused": True})]
    assert supervisor.handlers.requests == {} and child.process is None


def test_a_target_a_restarted_worker_cannot_start_again_is_reported_and_forgotten(supervisor):
    """The registry holds a target whose init frame the tracker fails on (one channel: it fails
    inside, past validation). Its worker is killed and started again: the new process reports the
    target failed instead of dying on it (on every restart), and the supervisor forgets it, so no
    later restart gets it as a seed."""
    stages = supervisor.stages
    [child] = stages.children.of_stage("inference")
    rec = supervisor.registry.streams["a"]
    box = (10.0, 10.0, 20.0, 20.0)
    rec.targets[5] = TargetRecord(box, np.zeros((120, 160), np.uint8), box, 0)
    child.process.kill()
    stages.children.restart(child, "killed by the test")
    eventually(lambda: stages.look_after() or child.process is not None, 60, "the worker started again")
    events: list = []

    def reported() -> bool:
        if supervisor.test_events.poll(200):
            events.append(recv(supervisor.test_events)[0])
        return any(isinstance(e, Ready) and e.generation == child.generation for e in events)

    eventually(reported, START_TIMEOUT_S, "the restarted worker's Ready")
    [failed] = [e for e in events if isinstance(e, TargetFailed)]
    assert (failed.stream, failed.target, failed.generation) == ("a", 5, child.generation)
    assert child.process.is_alive()
    supervisor.handlers.event(child, failed, None)
    assert rec.targets == {}
    assert [e["target"] for e in supervisor.events.since(0) if e["event"] == "target_failed"] == [5]


def events_socket(security: Security, folder: Path) -> zmq.Socket:
    sock = security.ctx.socket(zmq.PULL)
    sock.linger = 0
    security.bind(sock, f"ipc://{folder}/events")
    return sock


def reply_to(sock: zmq.Socket, pipe: CommandPipe, req: int) -> list:
    """Every event of the stage until its reply to request `req`, handing it the waiting commands."""
    events: list = []

    def answered() -> bool:
        pipe.flush()
        if sock.poll(200):
            events.append(recv(sock)[0])
        return any(isinstance(e, Reply) and e.req == req for e in events)

    eventually(answered, START_TIMEOUT_S, f"the stage's reply to request {req}")
    return events


def stage_spec(lite: Path, pipe: CommandPipe, folder: Path) -> InferenceSpec:
    return InferenceSpec(ModelConfig(weights=str(lite), threads=1), StageSpec((), (), GENERATION, False),
                         link_spec(pipe.endpoint, folder))


def test_a_command_sent_before_the_process_starts_is_answered_by_it(own_tmpdir, security, lite):
    """The supervisor's order: bind the pipe, build the spec, start the process; a request made
    before the process runs (or has loaded its model) is answered by that process."""
    events = events_socket(security, own_tmpdir)
    pipe = CommandPipe(security, f"ipc://{own_tmpdir}/commands")
    pipe.send(SetPaused(generation=GENERATION, stream="a", paused=True, req=7))
    process = LocalLauncher(None).inference(stage_spec(lite, pipe, own_tmpdir))
    try:
        got = reply_to(events, pipe, 7)
        assert isinstance(got[0], Ready) and got[0].generation == GENERATION
        assert got[-1] == Reply(generation=GENERATION, req=7, error="stream 'a' is not running")
    finally:
        process.terminate()
        process.join(30)
        events.close()
        pipe.close()
    assert process.exitcode == 0


@pytest.mark.slow
def test_a_cluster_worker_starts_from_its_complete_spec_and_takes_commands_sent_before(own_tmpdir, security, lite):
    """On Ray the spec, command endpoint included, is complete before the actor is placed: no
    endpoint is asked of the node (that was a free port found there, then bound: a race), and a
    command sent while Ray places the actor is answered by its stage."""
    pytest.importorskip("ray")
    from cluster_support import ray_cluster
    from siammask.pipeline import cluster as ray_mode
    from siammask.pipeline.endpoints import RunDir

    with ray_cluster() as (c, _):
        address = ray_mode.connect(c.address)
        run_dir = RunDir()
        cfg = PipelineConfig(streams=(StreamConfig("a", "x"),), worker=WorkerConfig(num_cpus=0.5, max_streams=1))
        launcher = ray_mode.RayLauncher(run_dir, cfg, address)
        try:
            events = events_socket(security, own_tmpdir)
            pipe = CommandPipe(security, launcher.supervisor_endpoint("commands"))
            assert pipe.endpoint.startswith(f"ipc://{run_dir.path}/"), pipe.endpoint  # one machine, our user
            process = launcher.inference(stage_spec(lite, pipe, own_tmpdir))
            pipe.send(SetPaused(generation=GENERATION, stream="a", paused=False, req=9))
            got = reply_to(events, pipe, 9)
            assert got[-1] == Reply(generation=GENERATION, req=9, error="stream 'a' is not running")
            assert launcher.refusal(process) is None
            process.kill()
            events.close()
            pipe.close()
        finally:
            launcher.close()
            ray_mode.disconnect()
            run_dir.remove()
