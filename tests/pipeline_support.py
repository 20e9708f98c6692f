"""Helpers for the pipeline tests: a lite random-weight checkpoint, `siammask serve` as a real process
with its own TMPDIR (so leftover ipc files and folders are visible, and its private folder, with the
default control socket, is its own) and the endpoints it bound, a
ZeroMQ subscriber, the Prometheus text, and the process tree under a pid read from /proc.

ZeroMQ endpoints are bound to port '*' (`ANY_PORT`): ZeroMQ picks a free port and serve logs which;
`free_port` is only for what ZeroMQ does not bind (HTTP servers, an RTSP server) and for a capture
host whose port another serve must know before it starts."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
import zmq

from siammask.checkpoint import save_checkpoint
from siammask.model import SiamMask
from siammask.pipeline.control import request

# One OpenMP thread per process: on a small shared box spinning threads slow every stage down. No
# XDG_RUNTIME_DIR: each serve's private folder (endpoints.private_dir) is then in its own TMPDIR.
ENV = {**{k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}, "OMP_NUM_THREADS": "1"}
START_TIMEOUT_S = 120  # hang guard only: the first message comes after torch loads in a new process
QUEUE_BOUND = 12  # frames that can wait between capture and inference (HWMs + socket buffers)
ANY_PORT = "tcp://127.0.0.1:*"
BOUND = {"publish": re.compile(r"\[sink\]: publishing results on (\S+)"),
         "control": re.compile(r"\[supervisor\]: control on (\S+)")}


@contextmanager
def network_namespace(prefix: str, subnet: int) -> Iterator[tuple[str, str]]:
    """A network namespace linked to this one by a veth pair, as another machine on its own network
    (10.SUBNET.x.2, routed through this one's 10.SUBNET.x.1): (namespace name, its address). Skips
    the test where namespaces cannot be made (needs root and iproute2)."""
    name, net = f"{prefix}{os.getpid()}", f"10.{subnet}.{os.getpid() % 200 + 10}"
    inside = ("ip", "netns", "exec", name)
    steps = [("ip", "netns", "add", name),
             ("ip", "link", "add", f"{name}h", "type", "veth", "peer", "name", f"{name}c"),
             ("ip", "link", "set", f"{name}c", "netns", name),
             ("ip", "addr", "add", f"{net}.1/24", "dev", f"{name}h"), ("ip", "link", "set", f"{name}h", "up"),
             (*inside, "ip", "addr", "add", f"{net}.2/24", "dev", f"{name}c"),
             (*inside, "ip", "link", "set", f"{name}c", "up"), (*inside, "ip", "link", "set", "lo", "up"),
             (*inside, "ip", "route", "add", "default", "via", f"{net}.1")]
    if shutil.which("ip") is None:
        pytest.skip("the ip command (iproute2) is missing")
    try:
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, timeout=30)
            if done.returncode:
                pytest.skip(f"cannot make a network namespace here ({' '.join(step)}: {done.stderr.strip()})")
        yield name, f"{net}.2"
    finally:
        subprocess.run(("ip", "netns", "del", name), capture_output=True, timeout=30)  # takes the veth pair along


def lite_checkpoint(path: Path) -> Path:
    """The lite variant (about 20x faster than sharp on a CPU) with seeded random weights."""
    torch.manual_seed(0)
    return save_checkpoint(SiamMask("lite").eval(), path, config={"hp": "davis"})


# A target that goes away and comes back (siammask.data.occlude's `patch`: background from
# elsewhere in the frame covers it, so the scene looks as if it had gone). With the shipped default
# weights it is lost on frame 21 and found again on frame 36 (Tracker.step, checked by hand and by
# tests/test_pipeline_stage.py); tests take the margins around those frames.
GONE = range(20, 35)           # frames where the target is absent
FOUND_BY = 45                  # it is found again before this frame


def disappearing_clip(num_frames: int = 60) -> list[np.ndarray]:
    """160x120 frames of the synthetic object of seed 3 (box BOX on frame 0), absent on GONE."""
    from siammask.data.occlude import occlude
    from siammask.synthetic import make_sequence
    seq = make_sequence(num_frames=num_frames, size=(160, 120), seed=3)
    boxes = np.array([f.box for f in seq])
    return occlude([f.image for f in seq], boxes, GONE.start, len(GONE), "patch", np.random.default_rng(0)).frames


def eventually(predicate, timeout_s: float, what: str, serve: "Serve | None" = None, interval_s: float = 0.2):
    """The first true value of `predicate()`, asked every `interval_s`: the one polling loop of the
    tests. `timeout_s` is a liveness bound, generous for a loaded box (never a speed check); the test
    fails naming `what` (with serve's log when given) after it, or at once when `serve` has exited."""
    end = time.monotonic() + timeout_s
    while not (found := predicate()):
        if serve is not None:
            assert serve.proc.poll() is None, f"serve exited while waiting for {what}:\n{serve.log()}"
        assert time.monotonic() < end, f"no {what} within {timeout_s:g} s" + (f":\n{serve.log()}" if serve else "")
        time.sleep(interval_s)
    return found


def terminate(proc: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM, then SIGKILL if it has not ended within `grace_s`."""
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state is [0], parent [1], start time [19])."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def descendants(pid: int) -> dict[int, str]:
    """Every live process below `pid` (children, grandchildren...), with its start time, from /proc."""
    stats = {int(e.name): _stat(int(e.name)) for e in Path("/proc").iterdir() if e.name.isdigit()}
    stats = {p: s for p, s in stats.items() if s}
    found, frontier = {}, {pid}
    while frontier:
        frontier = {p for p, s in stats.items() if int(s[1]) in frontier} - set(found)
        found.update({p: stats[p][19] for p in frontier})
    return found


def survivors(processes: dict[int, str], grace_s: float = 5.0) -> list[str]:
    """Command lines of `processes` (pid -> start time) still running after `grace_s`."""
    end = time.monotonic() + grace_s
    while True:
        left = [p for p, start in processes.items() if (s := _stat(p)) and s[19] == start and s[0] != "Z"]
        if not left or time.monotonic() > end:
            return [f"{p}: {cmdline(p)}" for p in left]
        time.sleep(0.1)


def processes_naming(text: str) -> dict[int, str]:
    """Every live process whose command line contains `text`, with its start time."""
    stats = {int(e.name): _stat(int(e.name)) for e in Path("/proc").iterdir() if e.name.isdigit()}
    return {p: s[19] for p, s in stats.items() if s and text in cmdline(p)}


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "(ended)"


class Serve:
    """`siammask serve --config` in a subprocess (behind `prefix`, e.g. `ip netns exec NAME`), with
    its log, control and metrics at hand."""

    def __init__(self, tmp: Path, config: dict, *args: str, prefix: tuple[str, ...] = ()) -> None:
        self.tmp = tmp
        self.config = config
        self.tmpdir = Path(tempfile.mkdtemp(prefix="serve-tmp-", dir="/tmp"))  # short: ipc paths have a limit
        self.config_path = tmp / "serve.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = tmp / "serve.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen([*prefix, sys.executable, "-m", "siammask.cli", "serve", "--config",
                                      str(self.config_path), *args], stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**ENV, "TMPDIR": str(self.tmpdir)}, cwd=tmp)

    def endpoint(self, name: str) -> str:
        """The `publish` or `control` endpoint serve bound: for port '*' or the default control
        socket, the one its log names."""
        given = self.config.get(name)
        if given and not given.endswith(":*"):
            return given
        end = time.monotonic() + START_TIMEOUT_S
        while not (found := BOUND[name].search(self.log())):
            assert self.proc.poll() is None and time.monotonic() < end, f"serve bound no {name} endpoint:\n{self.log()}"
            time.sleep(0.1)
        return found.group(1)

    @property
    def publish(self) -> str:
        return self.endpoint("publish")

    @property
    def control(self) -> str:
        return self.endpoint("control")

    def ctl(self, payload: dict, timeout_s: float = 20.0, keys=None) -> dict:
        return request(self.control, payload, keys, timeout_s)

    def metrics(self) -> dict[str, float]:
        """Prometheus samples as {'name{label="v",...}': value}."""
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.config['metrics_port']}/metrics", timeout=10).read()
        out = {}
        for line in text.decode().splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self, timeout_s: float = 60) -> int:
        """SIGTERM and wait: the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        finally:
            self._close()

    def ended(self, timeout_s: float) -> tuple[int, str]:
        """Exit status and log of a serve that stops by itself (or on a signal already sent); one
        still running after `timeout_s` is killed and the test fails."""
        try:
            code = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"serve ran on for {timeout_s:g} s:\n{self.log()}") from None
        self._close()
        return code, self.log()

    def leftovers(self) -> list[Path]:
        """What serve left in its TMPDIR (nothing, after a clean stop, but its empty private folder)."""
        return self._left if self._log.closed else self._files()

    def _files(self) -> list[Path]:
        return [p for p in self.tmpdir.rglob("*") if p != self.private]

    @property
    def private(self) -> Path:
        """serve's private folder (endpoints.private_dir under this TMPDIR)."""
        return self.tmpdir / f"siammask-{os.getuid()}"

    def _close(self) -> None:
        self._log.close()
        self._left = self._files()
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def kill(self) -> None:
        """Test clean-up only: whatever is left of the process tree."""
        for pid in {*descendants(self.proc.pid), self.proc.pid}:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()
        self._close()


class Subscriber:
    """A SUB socket on the publish endpoint; `recv` returns one decoded message or None. A target's
    lost/found event messages are passed over unless `events` (the lite model's random weights lose
    their targets within a few frames: tests of frame messages see frame and end messages only)."""

    def __init__(self, endpoint: str, ctx: zmq.Context | None = None, hwm: int = 1000, events: bool = False,
                 **options) -> None:
        self.events = events
        self.ctx = ctx or zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.linger = 0
        self.sock.rcvhwm = hwm
        for name, value in options.items():
            setattr(self.sock, name, value)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.sock.connect(endpoint)

    def recv(self, timeout_s: float) -> dict | None:
        end = time.monotonic() + timeout_s
        while self.sock.poll(max(0, int((end - time.monotonic()) * 1000))):
            msg = json.loads(self.sock.recv())
            if self.events or "event" not in msg:
                return msg
        return None

    def wait_for(self, predicate, timeout_s: float, what: str) -> list[dict]:
        """Messages until one satisfies `predicate`; fails the test with `what` after the timeout."""
        seen, end = [], time.monotonic() + timeout_s
        while time.monotonic() < end:
            msg = self.recv(min(1.0, max(0.01, end - time.monotonic())))
            if msg is not None:
                seen.append(msg)
                if predicate(msg):
                    return seen
        raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}; got {len(seen)} messages")

    def close(self) -> None:
        self.sock.close()


def collect(serve: Serve, count: int, timeout_s: float = 60, until=None, **options) -> list[dict]:
    """`count` messages from a new subscriber (or until `until(message)` holds)."""
    sub = Subscriber(serve.publish, **options)
    msgs: list[dict] = []
    try:
        return sub.wait_for(lambda m: msgs.append(m) or (until(m) if until else len(msgs) >= count),
                            timeout_s, f"messages ({len(msgs)} so far); log:\n{serve.log()}")
    finally:
        sub.close()


def check_accounting(msgs: list[dict]) -> None:
    """Frame ids only grow, and every gap is exactly the drops and paused frames the later message
    reports (messages of one stream, as one subscriber or the JSON-lines file saw them)."""
    for prev, cur in zip(msgs, msgs[1:]):
        lost = sum(cur["dropped"][k] for k in ("capture", "inference", "sink")) + cur["paused_frames"]
        assert cur["frame"] - prev["frame"] - 1 == lost, (prev["frame"], cur["frame"], cur["dropped"])


def raw_request(endpoint: str, raw: bytes, timeout_s: float = 20.0) -> dict:
    """What `siammask ctl` cannot send: arbitrary bytes."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.linger, sock.rcvtimeo = 0, int(timeout_s * 1000)
    sock.connect(endpoint)
    sock.send(raw)
    try:
        return json.loads(sock.recv())
    finally:
        sock.close(), ctx.term()


@contextmanager
def serving(tmp: Path, config: dict) -> Iterator[Serve]:
    """A Serve that has published its first message; whatever is left of it is killed at the end."""
    serve = Serve(tmp, config)
    try:
        collect(serve, 1, START_TIMEOUT_S)
        yield serve
    finally:
        if serve.proc.poll() is None:
            serve.kill()
