"""`siammask serve` across addresses: capture and inference as two serve processes talking tcp://
(as on two hosts; and from another network namespace, over a veth link, where the machine allows
it), every tcp endpoint protected by CURVE (key holders get results and control, strangers get
nothing); binding beyond loopback without keys refused; the one-line command form."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import zmq

from siammask.errors import UserError
from siammask.pipeline.config import CurveConfig
from siammask.pipeline.control import request
from siammask.pipeline.security import load_keys

from console_support import Console
from pipeline_support import (ANY_PORT, ENV, START_TIMEOUT_S, Serve, Subscriber, free_port, lite_checkpoint,
                              eventually, network_namespace)

BOX = [25.0, 19.0, 26.0, 19.0]
SILENCE_S = 3.0  # how long a client without the right keys is given to receive something


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> CurveConfig:
    out = tmp_path_factory.mktemp("keys") / "keys"
    done = subprocess.run([sys.executable, "-m", "siammask.cli", "keys", "--out", str(out)], capture_output=True,
                          text=True, env=ENV, timeout=60)
    assert done.returncode == 0, done.stderr
    again = subprocess.run([sys.executable, "-m", "siammask.cli", "keys", "--out", str(out)], capture_output=True,
                           text=True, env=ENV, timeout=60)
    assert again.returncode == 2 and "already holds keys" in again.stderr  # keys are never overwritten
    return CurveConfig(str(out / "server.key_secret"), str(out / "client.key_secret"), str(out / "authorized"))


@pytest.mark.slow
def test_public_endpoint_without_keys_is_refused(tmp_path, synthetic_video):
    done = subprocess.run([sys.executable, "-m", "siammask.cli", "serve", "--source", str(synthetic_video),
                           "--box", "1,1,20,20", "--publish", "tcp://0.0.0.0:*"],
                          capture_output=True, text=True, env=ENV, timeout=60, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "needs CURVE keys" in done.stderr


def start_pair(tmp_path: Path, video: Path, keys: CurveConfig, frames: str,
               camera_prefix: tuple[str, ...] = (), extra: dict | None = None) -> tuple[Serve, Serve]:
    """A capture-only serve publishing `video` on the `frames` endpoint (bound), and an inference
    serve reading it from there (connected) and publishing on a tcp port of every address (with
    `extra` keys in its config)."""
    curve = {"server_key": keys.server_key, "client_key": keys.client_key, "authorized_keys": keys.authorized_keys}
    (tmp_path / "cam").mkdir()
    (tmp_path / "infer").mkdir()
    camera_host = Serve(tmp_path / "cam", {
        "role": "capture", "curve": curve, "metrics_port": 0,
        "streams": [{"id": "cam", "source": str(video), "loop": True, "fps": 25.0, "endpoint": frames}]},
        prefix=camera_prefix)
    inference_host = Serve(tmp_path / "infer", {
        "curve": curve, "metrics_port": 0, "log_interval_s": 0,
        "streams": [{"id": "cam", "remote": True, "endpoint": frames, "boxes": [BOX]}],
        "model": {"weights": str(lite_checkpoint(tmp_path / "lite.pth")), "threads": 1},
        "publish": "tcp://*:*", "control": ANY_PORT, **(extra or {})})
    return camera_host, inference_host


def loopback(endpoint: str) -> str:
    """The 127.0.0.1 address of an endpoint bound on every address."""
    return f"tcp://127.0.0.1:{endpoint.rsplit(':', 1)[1]}"


def keyed_subscriber(endpoint: str, keys: CurveConfig, ctx: zmq.Context) -> Subscriber:
    client_keys = load_keys(keys)
    return Subscriber(endpoint, ctx=ctx, curve_serverkey=client_keys.server_public,
                      curve_publickey=client_keys.client_public, curve_secretkey=client_keys.client_secret)


@pytest.mark.slow
def test_remote_capture_over_curve(tmp_path, synthetic_video, keys):
    camera_host, inference_host = start_pair(tmp_path, synthetic_video, keys, f"tcp://127.0.0.1:{free_port()}")
    client_keys = load_keys(keys)
    ctx = zmq.Context()
    try:
        endpoint = loopback(inference_host.publish)
        keyed = keyed_subscriber(endpoint, keys, ctx)
        msg = keyed.wait_for(lambda m: m["targets"], START_TIMEOUT_S,
                             f"a keyed result; logs:\n{camera_host.log()}\n{inference_host.log()}")[-1]
        assert msg["stream"] == "cam" and [t["target"] for t in msg["targets"]] == [0]

        plain = Subscriber(endpoint, ctx=ctx)
        stranger = Subscriber(endpoint, ctx=ctx, curve_serverkey=client_keys.server_public,
                              **dict(zip(("curve_publickey", "curve_secretkey"), zmq.curve_keypair())))
        assert plain.recv(SILENCE_S) is None, "a client without keys got results"
        assert stranger.recv(0.5) is None, "a client with unauthorized keys got results"
        assert keyed.recv(10) is not None, "the keyed client stopped getting results"

        control = inference_host.control
        assert request(control, {"cmd": "list"}, client_keys, 20)["ok"]
        with pytest.raises(UserError, match="no reply"):
            request(control, {"cmd": "list"}, None, SILENCE_S)
    finally:
        ctx.destroy(linger=0)
        codes = inference_host.stop(), camera_host.stop()
    assert codes == (0, 0)


@pytest.mark.slow
def test_the_console_shows_and_controls_a_stream_of_a_capture_host(tmp_path, synthetic_video, keys):
    camera_host, inference_host = start_pair(tmp_path, synthetic_video, keys, f"tcp://127.0.0.1:{free_port()}",
                                             extra={"console": {"listen": "127.0.0.1:0"}})
    try:
        assert inference_host.publish  # started (its endpoints are logged)
        eventually(lambda: "[console]: console on" in inference_host.log(), START_TIMEOUT_S, "the console",
                   inference_host)
        console = Console(inference_host)
        eventually(lambda: any(s["id"] == "cam" and s["targets"] and s["targets"][0]["frame"] > 0
                               for s in console.ok("GET", "/api/streams")["streams"]), START_TIMEOUT_S,
                   "cam's target tracked", inference_host, interval_s=0.5)
        assert [t["id"] for t in console.ok("GET", "/api/streams")["streams"][0]["targets"]] == [0], \
            f"logs:\n{camera_host.log()}\n{inference_host.log()}"
        assert console.ok("POST", "/api/streams/cam/targets", {"box": list(BOX)})["target"] == 1
        status, png = console.request("GET", "/api/streams/cam/snapshot.png")
        assert status == 200 and cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR).shape[2] == 3
        assert console.ok("DELETE", "/api/streams/cam/targets/1") is not None
        assert [t["id"] for t in inference_host.ctl({"cmd": "list"}, keys=load_keys(keys))["streams"][0]["targets"]] == [0]
    finally:
        codes = inference_host.stop(), camera_host.stop()
    assert codes == (0, 0)


@pytest.fixture
def camera_namespace():
    """A camera host on its own network: (namespace name, its address)."""
    with network_namespace("smcam", 231) as made:
        yield made


@pytest.mark.slow
def test_capture_in_another_network_namespace(tmp_path, synthetic_video, keys, camera_namespace):
    """The camera host binds its frames endpoint on its own address in its own namespace; the
    inference host reaches it over the veth link, as across two machines."""
    name, address = camera_namespace
    camera_host, inference_host = start_pair(tmp_path, synthetic_video, keys, f"tcp://{address}:{free_port()}",
                                             camera_prefix=("ip", "netns", "exec", name))
    ctx = zmq.Context()
    try:
        keyed = keyed_subscriber(loopback(inference_host.publish), keys, ctx)
        got = keyed.wait_for(lambda m: m["frame"] >= 10, START_TIMEOUT_S,
                             f"results; logs:\n{camera_host.log()}\n{inference_host.log()}")
        assert all(m["stream"] == "cam" and [t["target"] for t in m["targets"]] == [0] for m in got)
    finally:
        ctx.destroy(linger=0)
        codes = inference_host.stop(), camera_host.stop()
    assert codes == (0, 0)


@pytest.mark.slow
def test_simple_command_line_serves_a_file_and_exits_at_its_end(tmp_path, synthetic_video, synthetic_frames):
    """`siammask serve --source FILE --box ...` without --loop: every stream ends, so serve stops by itself."""
    box = synthetic_frames[0].box
    out, video = tmp_path / "results.jsonl", tmp_path / "annotated.avi"
    done = subprocess.run([sys.executable, "-m", "siammask.cli", "serve", "--source", str(synthetic_video),
                           "--box", ",".join(map(str, box)), "--stream-id", "cam", "--json", str(out),
                           "--output", str(video),
                           "--weights", str(lite_checkpoint(tmp_path / "lite.pth")), "--threads", "1",
                           "--publish", ANY_PORT, "--control", f"ipc://{tmp_path}/control",
                           "--metrics-port", "0"], capture_output=True, text=True, env=ENV, timeout=START_TIMEOUT_S,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "every stream has ended" in done.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    first = lines[0]
    assert first["frame"] == 0 and first["stream"] == "cam"
    assert first["targets"] == [{"frame": 0, "box": list(box), "polygon": first["targets"][0]["polygon"],
                                 "score": 1.0, "presence": 1.0, "lost": False, "found": False, "mask": None,
                                 "target": 0}]
    assert [m["frame"] for m in lines] == sorted({m["frame"] for m in lines})
    assert max(m["frame"] for m in lines) < len(synthetic_frames)
    capture = cv2.VideoCapture(str(video))
    written = 0
    while (frame := capture.read()[1]) is not None:
        assert frame.shape == (120, 160, 3)
        written += 1
    capture.release()
    assert written == len(lines), "the annotated video misses frames (closed before its last results?)"
