"""Who can do what to a running `siammask serve` (issue 23), on a real serve process: another local
user cannot reach the control socket (so cannot make serve bind over, and delete, a file); the owner
cannot name an ipc:// stream endpoint outside serve's private folder either; a TCP control endpoint
without CURVE keys and a source that is a device are refused before anything starts."""
from __future__ import annotations

import dataclasses
import ipaddress
import itertools
import json
import logging
import os
import pwd
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import zmq

from siammask.pipeline.config import CurveConfig
from siammask.pipeline.messages import SetPaused, send
from siammask.pipeline.security import CurveKeys, apply_client_keys, load_keys, write_keys

from cluster_support import STORE_BYTES, placement, ray_cluster, serve_config, serving_all, stream
from pipeline_support import (ANY_PORT, ENV, START_TIMEOUT_S, Serve, cmdline, collect, descendants, eventually,
                              free_port, network_namespace, serving)

BOX = [25.0, 19.0, 26.0, 19.0]   # the synthetic object on frame 0 (seed 3, 160x120)
ATTACK_WAIT_S = 5.0              # how long the other user's request is given to get an answer
OLD_SPAN = 1 << 16                # generations were 65536 per supervisor start + 1024 * worker + start


def as_user(user: str, action: Callable[[zmq.Context], str]) -> str:
    """What `action` returns, run in a child process as `user` (uid and groups dropped) with a new
    ZeroMQ context: nothing but pyzmq, imported already; an exception is returned as text."""
    entry = pwd.getpwnam(user)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)
            outcome = action(zmq.Context())
        except Exception as exc:  # noqa: BLE001 - reported to the test, whatever it is
            outcome = f"error: {type(exc).__name__}: {exc}"
        os.write(write, outcome.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        outcome = pipe.read()
    os.waitpid(pid, 0)
    return outcome


def request(endpoint: str, payload: dict) -> Callable[[zmq.Context], str]:
    """Send `payload` to a control endpoint: its reply, or 'no reply'."""
    def send(ctx: zmq.Context) -> str:
        sock = ctx.socket(zmq.DEALER)
        sock.linger = 0
        sock.connect(endpoint)
        sock.send(json.dumps(payload).encode())
        return sock.recv().decode() if sock.poll(int(ATTACK_WAIT_S * 1000)) else "no reply"
    return send


def pull(endpoints: list[str]) -> Callable[[zmq.Context], str]:
    """Connect one PULL socket to every endpoint: how many pipeline messages (a frame, a result, a
    command...) it took ('0' for none). Ray's HTTP servers answer ZeroMQ's greeting with bytes that
    it reads as messages of the old protocol: those are not the pipeline's."""
    def take(ctx: zmq.Context) -> str:
        sock = ctx.socket(zmq.PULL)
        sock.linger = 0
        for endpoint in endpoints:
            sock.connect(endpoint)
        taken, end = 0, time.monotonic() + ATTACK_WAIT_S
        while (left := end - time.monotonic()) > 0:
            if sock.poll(int(left * 1000)):
                taken += sock.recv_multipart()[0].startswith(b'{"type": ')
        return str(taken)
    return take


@pytest.mark.slow
@pytest.mark.skipif(os.getuid() != 0, reason="needs root to act as another user")
def test_another_user_cannot_make_serve_delete_a_file(tmp_path, synthetic_video, lite):
    """As uid nobody, add_stream with endpoint ipc://<a root-only file> replaced that file with a
    socket (the control endpoint was tcp://127.0.0.1, and the capture's bind unlinks what is there).
    Now control is an ipc:// socket in a 0700 folder: nobody gets no answer and the file survives;
    the owner is refused an endpoint outside the private folder; `siammask ctl` finds the socket."""
    secret = tmp_path / "secret"
    secret.write_text("root only")
    secret.chmod(0o600)
    serve = Serve(tmp_path, {
        "streams": [{"id": "cam", "source": str(synthetic_video), "loop": True, "fps": 20.0, "boxes": [BOX]}],
        "model": {"weights": str(lite), "threads": 1}, "publish": ANY_PORT, "metrics_port": 0,
        "log_interval_s": 0})
    try:
        collect(serve, 1, START_TIMEOUT_S)
        attack = {"cmd": "add_stream", "stream": {"id": "evil", "source": str(synthetic_video), "loop": True,
                                                  "endpoint": f"ipc://{secret}"}}
        outcome = as_user("nobody", request(serve.control, attack))
        assert outcome == "no reply", outcome
        refused = serve.ctl(attack)
        listed = subprocess.run([sys.executable, "-m", "siammask.cli", "ctl", "list"], capture_output=True,
                                text=True, env={**ENV, "TMPDIR": str(serve.tmpdir)}, timeout=60)
        assert stat.S_ISREG(secret.lstat().st_mode) and secret.read_text() == "root only"
        assert refused["ok"] is False and "outside serve's private folder" in refused["error"], refused
        assert serve.control == f"ipc://{serve.private / 'control'}"
        assert stat.S_IMODE(serve.private.stat().st_mode) == 0o700
        assert listed.returncode == 0, listed.stderr
        assert [s["id"] for s in json.loads(listed.stdout)["streams"]] == ["cam"]
        code = serve.stop()
    finally:
        if serve.proc.poll() is None:
            serve.kill()
    assert code == 0, serve.log()
    assert serve.leftovers() == []  # the control socket went with a clean stop


@pytest.mark.slow
def test_a_command_with_a_guessed_generation_is_ignored(tmp_path, synthetic_video, lite):
    """The inference stage obeys commands of its own generation only. It was 65536 for the first
    start (65536 + 1024 * worker + start in a cluster), so whoever reached the command socket (a
    cluster worker's was tcp) paused a stream while `ctl list` said it was running. Now it is drawn
    at random per start: the guessed pause is ignored and the stream goes on."""
    serve = Serve(tmp_path, {
        "streams": [{"id": "cam", "source": str(synthetic_video), "loop": True, "fps": 20.0, "boxes": [BOX]}],
        "model": {"weights": str(lite), "threads": 1}, "publish": ANY_PORT, "metrics_port": 0,
        "log_interval_s": 0})
    ctx = zmq.Context()
    try:
        collect(serve, 1, START_TIMEOUT_S)
        [commands] = serve.tmpdir.rglob("*-commands")
        sock = ctx.socket(zmq.PUSH)
        sock.linger, sock.sndtimeo = 0, 10_000
        sock.connect(f"ipc://{commands}")
        for worker, start in itertools.product(range(4), range(1, 4)):  # the old formula's first guesses
            send(sock, SetPaused(stream="cam", paused=True, req=1, generation=OLD_SPAN + 1024 * worker + start),
                 block=True)
        send(sock, SetPaused(stream="cam", paused=True, req=1, generation=OLD_SPAN), block=True)
        sent = time.time()
        later = []  # results of frames read well after the pause would have been in force
        collect(serve, 1, 60, until=lambda m: m["capture_ts"] > sent + 1 and later.append(m) is None
                and len(later) >= 10)
        assert [m["paused_frames"] for m in later] == [0] * 10
        code = serve.stop()
    finally:
        ctx.destroy(linger=0)
        if serve.proc.poll() is None:
            serve.kill()
    assert code == 0, serve.log()


def peer_connects(sock: zmq.Socket, wait_s: float) -> bool:
    """Whether some peer connects to a bound PUSH socket within `wait_s`: with none, a send that
    must not block raises Again."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            sock.send(b"not a frame", zmq.NOBLOCK)  # the inference stage drops and counts it
            return True
        except zmq.Again:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)


@pytest.mark.slow
def test_a_stream_endpoint_must_be_a_configured_capture_host(tmp_path, synthetic_video, lite):
    """add_stream took any tcp:// endpoint: whoever holds the control socket made serve connect to
    (a remote stream) or bind (a local capture) any address. Now only the capture hosts' endpoints
    the operator listed in the config (capture_endpoints, or a config stream's endpoint): another is
    refused with one line and serve never connects there; a listed one is connected to."""
    ctx = zmq.Context()
    listed, unlisted = ctx.socket(zmq.PUSH), ctx.socket(zmq.PUSH)
    for sock in (listed, unlisted):
        sock.linger = 0
        sock.bind("tcp://127.0.0.1:*")
    listed_at, unlisted_at = (sock.getsockopt_string(zmq.LAST_ENDPOINT) for sock in (listed, unlisted))
    near_at = f"tcp://127.0.0.1:{free_port()}"  # where a local capture would bind
    config = {"streams": [{"id": "cam", "source": str(synthetic_video), "loop": True, "fps": 20.0, "boxes": [BOX]}],
              "model": {"weights": str(lite), "threads": 1}, "publish": ANY_PORT, "metrics_port": 0,
              "log_interval_s": 0, "capture_endpoints": [listed_at]}
    with ctx, serving(tmp_path, config) as serve:  # the context ends (linger 0) after serve
        remote = serve.ctl({"cmd": "add_stream", "stream": {"id": "far", "remote": True, "endpoint": unlisted_at}})
        bound = serve.ctl({"cmd": "add_stream", "stream": {"id": "near", "source": str(synthetic_video),
                                                           "endpoint": near_at}})
        connected_unlisted = peer_connects(unlisted, ATTACK_WAIT_S)
        accepted = serve.ctl({"cmd": "add_stream", "stream": {"id": "far", "remote": True, "endpoint": listed_at}})
        connected_listed = peer_connects(listed, START_TIMEOUT_S)
        streams = [s["id"] for s in serve.ctl({"cmd": "list"})["streams"]]
        assert serve.stop() == 0, serve.log()
    for refused, stream, endpoint in ((remote, "far", unlisted_at), (bound, "near", near_at)):
        assert refused == {"ok": False, "error": f"stream '{stream}' endpoint '{endpoint}' is not a capture host's "
                           "endpoint in serve's config; add it to capture_endpoints there (or use an ipc:// path in "
                           "serve's private folder)"}, refused
    assert not connected_unlisted, "serve connected to an endpoint nobody configured"
    assert accepted["ok"] is True and connected_listed, (accepted, serve.log())
    assert streams == ["cam", "far"]


def refusal(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """`siammask serve ARGS` that must stop before anything starts (or hang, as it did)."""
    try:
        return subprocess.run([sys.executable, "-m", "siammask.cli", "serve", *args, "--metrics-port", "0"],
                              capture_output=True, text=True, env=ENV, timeout=90, cwd=tmp_path)
    except subprocess.TimeoutExpired:
        pytest.fail(f"serve {' '.join(args)} was not refused: it ran for 90 s")


@pytest.mark.slow
def test_tcp_control_without_curve_keys_is_refused_at_start(tmp_path, synthetic_video):
    done = refusal(tmp_path, "--source", str(synthetic_video), "--control", ANY_PORT)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "every local user can reach, so it needs CURVE keys" in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null"])
def test_a_device_as_source_is_refused_as_track_does(tmp_path, device):
    """They exist, so they passed the check and the capture retried them for ever."""
    done = refusal(tmp_path, "--source", device)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [f"siammask: error: stream '0': source '{device}' is not a video file, image "
                                        "folder or named pipe; give one of those, a camera index or a URL"]


def listening(pids: set[int]) -> dict[str, str]:
    """Every TCP address some process of `pids` listens on ('ADDRESS:PORT'), with the process's
    name, from /proc (in the processes' own network namespaces)."""
    inodes = {}
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes[target[8:-1]] = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue  # ended meanwhile
    found = {}
    tables = {f"/proc/{pid}/net/{name}" for pid in pids for name in ("tcp", "tcp6")}  # each one's network namespace
    for table in tables:
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue  # ended meanwhile
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                raw, port = fields[1].split(":")  # 32-bit words in host (little-endian) order
                ip = ipaddress.ip_address(b"".join(bytes.fromhex(raw[i:i + 8])[::-1] for i in range(0, len(raw), 8)))
                ip = getattr(ip, "ipv4_mapped", None) or ip  # ::ffff:127.0.0.1 is 127.0.0.1
                found[f"{ip}:{int(port, 16)}" if ip.version == 4 else f"[{ip}]:{int(port, 16)}"] = inodes[fields[9]]
    return found


def is_loopback(address: str) -> bool:
    return ipaddress.ip_address(address.rsplit(":", 1)[0].strip("[]")).is_loopback


@pytest.mark.slow
@pytest.mark.skipif(os.getuid() != 0, reason="needs root to act as another user")
def test_cluster_ray_listens_on_loopback_only_and_no_stranger_takes_frames(tmp_path, synthetic_video, lite):
    """`--cluster ray` starts a Ray cluster of this machine alone: its GCS, raylet and workers
    listened on every interface (Ray's token guards them, but nothing outside needs to reach them),
    and the stage sockets were tcp on 127.0.0.1, where any local user's PULL socket took frames from
    a capture. Now Ray listens on loopback only and the stage sockets are ipc:// in the private
    folder: uid nobody, connected to every port serve's processes listen on, gets nothing."""
    pytest.importorskip("ray")
    serve = Serve(tmp_path, {
        "streams": [{"id": "cam", "source": str(synthetic_video), "loop": True, "fps": 10.0, "boxes": [BOX]}],
        "model": {"weights": str(lite), "threads": 1}, "publish": ANY_PORT, "metrics_port": 0,
        "log_interval_s": 0, "cluster": "ray", "worker": {"num_cpus": 0.5}})
    try:
        collect(serve, 1, START_TIMEOUT_S)
        found = listening({serve.proc.pid, *descendants(serve.proc.pid)})
        taken = as_user("nobody", pull([f"tcp://{a}" for a in found]))
        code = serve.stop()
    finally:
        if serve.proc.poll() is None:
            serve.kill()
    assert code == 0, serve.log()
    assert {"gcs_server", "raylet"} <= set(found.values()), found
    assert [f"{a} ({name})" for a, name in found.items() if not is_loopback(a)] == []
    assert taken == "0", f"a stranger took {taken} messages from {found}"


@pytest.mark.slow
@pytest.mark.skipif(os.getuid() != 0, reason="needs root to act as another user")
def test_serve_joined_to_a_cluster_of_this_machine_keeps_its_stage_sockets_private(tmp_path, synthetic_video, lite):
    """serve joined to a running cluster whose nodes are all on this machine: the stage sockets (the
    supervisor's commands, events and results, each stream's frames, each worker's commands) were tcp
    on 127.0.0.1 without CURVE, open to every local user. Now they are ipc:// in serve's run folder
    (0700), as with `--cluster ray`: uid nobody, connected to every one of them, gets nothing."""
    pytest.importorskip("ray")
    with ray_cluster() as (cluster, _):
        config = serve_config([stream("a", synthetic_video), stream("b", synthetic_video)], lite,
                              cluster=cluster.address)
        with serving_all(tmp_path, config) as serve:
            endpoints = {s["id"]: s["endpoint"] for s in serve.ctl({"cmd": "list"})["streams"]}
            [run_dir] = serve.private.glob("siammask-serve-*")
            sockets = sorted(p for p in run_dir.iterdir() if p.is_socket())
            mode = stat.S_IMODE(run_dir.stat().st_mode)
            taken = as_user("nobody", pull([f"ipc://{p}" for p in sockets]))
            collect(serve, 1, START_TIMEOUT_S, until=lambda m: m["stream"] == "b")  # still publishing
            code = serve.stop()
    assert code == 0, serve.log()
    assert all(e.startswith(f"ipc://{run_dir}/") for e in endpoints.values()), endpoints
    names = [p.name.split("-", 1)[1] for p in sockets]
    assert sorted(set(names)) == ["commands", "events", "frames", "results"], names
    assert names.count("commands") == 2 and names.count("frames") == 2, names  # one per worker, one per stream
    assert mode == 0o700
    assert taken == "0", f"a stranger took {taken} messages from {sockets}"


def namespace_node(namespace: str, address: str, head: str) -> subprocess.Popen:
    """A Ray node of 1 CPU in a network namespace (another machine), joined to the cluster at `head`."""
    return subprocess.Popen(["ip", "netns", "exec", namespace, sys.executable, "-c",
                             "from ray.scripts.scripts import main; main()", "start", "--block", f"--address={head}",
                             f"--node-ip-address={address}", "--num-cpus=1", f"--object-store-memory={STORE_BYTES}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)


def wait_for_nodes(head: str, count: int, nodes: list[subprocess.Popen]) -> None:
    """Until the cluster at `head` has `count` live nodes (this process joins it as a driver meanwhile)."""
    import ray

    ray.init(address=head, logging_level=logging.WARNING)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while len([n for n in ray.nodes() if n["Alive"]]) < count:
            assert time.monotonic() < deadline and all(n.poll() is None for n in nodes), "a node did not join"
            time.sleep(0.5)
    finally:
        ray.shutdown()


def handshake(endpoint: str, keys: CurveKeys | None, wait_s: float) -> bool:
    """Whether a PUSH socket (with the client keys, or none) completes ZeroMQ's handshake with
    whatever listens at `endpoint` within `wait_s`; it sends nothing."""
    ctx = zmq.Context()
    try:
        sock = ctx.socket(zmq.PUSH)
        sock.linger = 0
        if keys:
            apply_client_keys(sock, keys)
        monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
        sock.connect(endpoint)
        return bool(monitor.poll(int(wait_s * 1000)))
    finally:
        ctx.destroy(linger=0)


@pytest.mark.slow
def test_a_worker_on_a_machine_that_joined_later_uses_curve_with_the_runs_keys(tmp_path, synthetic_video, lite):
    """serve on a cluster that spans machines from the start (this one, whose head has no CPU, and a
    network namespace), with curve keys; then a node of a third machine (another namespace) joins,
    and a stream added since can only get a worker there. That worker listens on nothing (it bound
    its command socket there before, open to that machine's network unless CURVE was right): it
    connects to the command, events and results sockets serve binds, with the run's CURVE keys, and
    the stream publishes; serve's own sockets complete ZeroMQ's handshake with the keys, never without."""
    pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    write_keys(tmp_path / "keys")
    curve = CurveConfig(str(tmp_path / "keys" / "server.key_secret"), str(tmp_path / "keys" / "client.key_secret"),
                        str(tmp_path / "keys" / "authorized"))
    keys = load_keys(curve)
    keyed = {"curve_serverkey": keys.server_public, "curve_publickey": keys.client_public,
             "curve_secretkey": keys.client_secret}
    with network_namespace("smfirst", 233) as (first, first_address), \
            network_namespace("smlater", 234) as (later, later_address):
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False,
                                                                "object_store_memory": STORE_BYTES})
        nodes = [namespace_node(first, first_address, cluster.address)]
        serve = None
        try:
            wait_for_nodes(cluster.address, 2, nodes)
            serve = Serve(tmp_path, serve_config([stream("a", synthetic_video)], lite, cluster=cluster.address,
                                                 worker={"num_cpus": 1, "max_streams": 1},
                                                 curve=dataclasses.asdict(curve)))
            collect(serve, 1, START_TIMEOUT_S, until=lambda m: m["stream"] == "a", **keyed)
            nodes.append(namespace_node(later, later_address, cluster.address))
            wait_for_nodes(cluster.address, 3, nodes)
            assert serve.ctl({"cmd": "add_stream", "stream": stream("c", synthetic_video)})["ok"]
            collect(serve, 1, START_TIMEOUT_S, until=lambda m: m["stream"] == "c" and m["targets"], **keyed)
            in_later = subprocess.run(["ip", "netns", "pids", later], capture_output=True, text=True).stdout.split()
            stages = {int(p) for p in in_later if "spawn_main" in cmdline(int(p))}
            found = listening(stages)
            served = [f"tcp://{a}" for a in listening({serve.proc.pid})]  # (Ray's driver servers too)
            keyed_in = [e for e in served if handshake(e, keys, ATTACK_WAIT_S)]
            open_in = [e for e in served if handshake(e, None, ATTACK_WAIT_S)]
            code = serve.stop()
        finally:
            if serve is not None and serve.proc.poll() is None:
                serve.kill()
            for node in nodes:
                node.terminate()
                node.wait(60)
            cluster.shutdown()
    assert code == 0, serve.log()
    assert stages, "no stage process ran on the machine that joined later"
    assert found == {}, found
    assert keyed_in, served  # some tcp socket of serve's takes a CURVE handshake with the keys
    assert open_in == [], open_in
    assert "joined the cluster after serve started" not in serve.log()


@pytest.mark.slow
def test_a_worker_placed_on_a_machine_that_joined_later_is_refused(tmp_path, synthetic_video, lite):
    """serve on a cluster of this machine (two 1-CPU nodes, a worker on each); then a node of another
    machine (a network namespace) joins and a third worker can only go there: it bound its command
    socket on that machine's address without CURVE (a stranger there could pause streams). Now it
    is refused before any stage process starts there, with one line in the log; the others go on."""
    pytest.importorskip("ray")
    with network_namespace("smlate", 232) as (namespace, address), ray_cluster() as (cluster, _):
        config = serve_config([stream("a", synthetic_video), stream("b", synthetic_video)], lite,
                              cluster=cluster.address, worker={"num_cpus": 1, "max_streams": 1})
        with serving_all(tmp_path, config) as serve:
            late = namespace_node(namespace, address, cluster.address)
            try:
                assert serve.ctl({"cmd": "add_stream", "stream": stream("c", synthetic_video)})["ok"]
                refusal = f"was placed on {address}, a machine that joined the cluster after serve started"
                eventually(lambda: refusal in serve.log() or late.poll() is not None, START_TIMEOUT_S,
                           "the late node's worker refused", serve, interval_s=0.5)
                assert late.poll() is None, serve.log()
                in_namespace = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True)
                stages = [cmdline(int(p)) for p in in_namespace.stdout.split() if "spawn_main" in cmdline(int(p))]
                collect(serve, 1, START_TIMEOUT_S, until=lambda m: m["stream"] == "a")
                collect(serve, 1, START_TIMEOUT_S, until=lambda m: m["stream"] == "b")
            finally:
                late.terminate()
                late.wait(60)
        assert stages == [], "a stage process ran on the machine that joined late"
        assert serve.log().count(refusal) == 1, serve.log()
