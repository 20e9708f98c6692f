"""`siammask serve --console`: the operator's console against a real serve, over real HTTP, and in a
real headless Chromium used as a person would (tests/browser.py drives it over the DevTools pipe).

One pipeline (a looping synthetic video) serves the module; a test that changes the registry does it
on a stream or target of its own and removes it, so each passes alone and in any order. Waits are on
observed replies and page contents with generous liveness bounds, never on sleeps."""
from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest

from siammask.errors import UserError
from siammask.pipeline.config import ConsoleConfig, PipelineConfig, StreamConfig, check_config, console_address
from siammask.pipeline.console.auth import Access
from siammask.pipeline.console.routes import MAX_BODY_BYTES

from browser import Browser
from console_support import PAGE_WAIT_S, Console
from pipeline_support import ANY_PORT, ENV, collect, eventually, free_port, raw_request, serving
from reference import DATA

slow = pytest.mark.slow         # the tests that run serve's processes
BOX = [25.0, 19.0, 26.0, 19.0]  # the synthetic object on frame 0 (seed 3, 160x120)


def console_config(tmp: Path, video: Path, lite: Path) -> dict:
    return {"streams": [{"id": "a", "source": str(video), "loop": True, "fps": 25.0, "boxes": [BOX]}],
            "model": {"weights": str(lite), "threads": 1}, "publish": ANY_PORT, "metrics_port": free_port(),
            "console": {"listen": "127.0.0.1:0"}, "log_interval_s": 0}


@pytest.fixture(scope="module")
def console(tmp_path_factory, synthetic_video, lite):
    tmp = tmp_path_factory.mktemp("console")
    with serving(tmp, console_config(tmp, synthetic_video, lite)) as serve:
        yield Console(serve)


@pytest.fixture
def own_stream(console, synthetic_video):
    """A stream of the test's own, added and removed through the API."""
    stream_id = f"c-{uuid.uuid4().hex[:8]}"
    console.ok("POST", "/api/streams", {"id": stream_id, "source": str(synthetic_video), "loop": True, "box": BOX})
    yield stream_id
    console.request("DELETE", f"/api/streams/{stream_id}")


def listing(console: Console, stream: str) -> dict:
    return next(s for s in console.serve.ctl({"cmd": "list"})["streams"] if s["id"] == stream)


# --- configuration: no serve needed ------------------------------------------------------------------

def test_console_address_rules():
    assert console_address(ConsoleConfig(listen=8080)) == ("127.0.0.1", 8080)
    assert console_address(ConsoleConfig(listen="localhost:0")) == ("localhost", 0)
    assert console_address(ConsoleConfig(listen="0.0.0.0:9000", token="t" * 16)) == ("0.0.0.0", 9000)
    with pytest.raises(UserError, match="reachable from other machines; set a token"):
        console_address(ConsoleConfig(listen="0.0.0.0:9000"))
    with pytest.raises(UserError, match="is not \\[HOST:\\]PORT"):
        console_address(ConsoleConfig(listen="127.0.0.1:70000"))
    with pytest.raises(UserError, match="token must be 16 to 256 characters"):
        console_address(ConsoleConfig(token="short"))


def test_a_capture_host_has_no_console(synthetic_video):
    cfg = PipelineConfig(streams=(StreamConfig("cam", str(synthetic_video), endpoint="tcp://127.0.0.1:7000"),),
                         role="capture", console=ConsoleConfig())
    with pytest.raises(UserError, match="console: is for the serve that runs the inference"):
        check_config(cfg)


def test_non_loopback_console_without_token_refuses_to_start(tmp_path, synthetic_video):
    proc = subprocess.run([sys.executable, "-m", "siammask.cli", "serve", "--source", str(synthetic_video),
                           "--console", "0.0.0.0:8080"], capture_output=True, text=True, timeout=120, env=ENV,
                          cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "siammask: error: console on '0.0.0.0' is reachable from other machines; set a token in the config "
        "(console: {listen: ..., token: ...}) or listen on 127.0.0.1"]


@slow
def test_a_busy_console_port_stops_serve_with_one_line(tmp_path, synthetic_video, lite):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "siammask.cli", "serve", "--source", str(synthetic_video),
                               "--weights", str(lite), "--publish", ANY_PORT, "--metrics-port", "0",
                               "--console", str(port)], capture_output=True, text=True, timeout=120,
                              env={**ENV, "TMPDIR": str(tmp_path)}, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (f"siammask: error: cannot serve the console on 127.0.0.1:{port}: "
                                                    "Address already in use; pick another port")
    assert "Traceback" not in proc.stderr


def test_access_rules_on_headers():
    access = Access.for_address("127.0.0.1", 8080, "x" * 20)
    good = {"Host": "127.0.0.1:8080", "Authorization": "Bearer " + "x" * 20}
    assert access.check(good) is None
    assert access.check({"Host": "localhost:8080", "Cookie": f"a=b; siammask_console_8080={'x' * 20}"}) is None
    assert access.check({**good, "Authorization": "Bearer " + "y" * 20}).status == 401
    assert access.check({"Host": "127.0.0.1:8080"}).status == 401
    assert access.check({**good, "Host": "attacker.example:8080"}).status == 403        # DNS rebinding
    assert access.check({**good, "Origin": "http://attacker.example"}).status == 403    # another page
    assert access.check({**good, "Origin": "http://127.0.0.1:8080"}) is None
    assert access.check({**good, "Sec-Fetch-Site": "cross-site"}).status == 403
    assert access.check({**good, "Sec-Fetch-Site": "same-site"}).status == 403          # another port
    assert "SameSite=Strict" in access.set_cookie() and "HttpOnly" in access.set_cookie()
    anywhere = Access.for_address("0.0.0.0", 8080, "x" * 20)
    assert anywhere.check({**good, "Host": "camera-room:8080"}) is None


# --- the API on a real serve ---------------------------------------------------------------------------

@slow
def test_api_lists_streams_with_targets_and_figures(console):
    collect(console.serve, 0, until=lambda m: m["stream"] == "a")
    reply = console.ok("GET", "/api/streams")
    stream = next(s for s in reply["streams"] if s["id"] == "a")
    assert [t["id"] for t in stream["targets"]] == [0] and stream["state"] == "running"
    assert set(stream["targets"][0]) == {"id", "box", "state", "presence", "score", "frame"}
    assert set(stream["figures"]) == {"fps", "read_fps", "latency_p50_ms", "latency_p99_ms", "dropped"}
    assert set(stream["figures"]["dropped"]) == {"capture", "inference", "sink", "publish"}
    assert isinstance(reply["restarts"], dict)


@slow
def test_healthz_answers_200_while_every_stage_runs(console):
    collect(console.serve, 0, until=lambda m: m["stream"] == "a")
    port = console.serve.config["metrics_port"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=60) as reply:
        assert reply.status == 200 and json.loads(reply.read()) == {"ok": True, "down": []}
    assert f"[supervisor]: metrics on http://127.0.0.1:{port}/metrics" in console.serve.log()


@slow
def test_requests_without_the_token_are_refused_and_change_nothing(console):
    before = listing(console, "a")
    for token in (None, "wrong-token-wrong-token"):
        status, reply = console.request("POST", "/api/streams/a/targets", {"box": BOX}, token=token)
        assert status == 401 and reply["error"].startswith("missing or wrong token")
        assert console.request("GET", "/api/streams", token=token)[0] == 401
        assert console.request("GET", "/", token=token)[0] == 401
        assert console.request("GET", f"/?token={token}", token=None)[0] == 401
        assert console.request("DELETE", "/api/streams/a", token=token)[0] == 401
    assert [t["id"] for t in listing(console, "a")["targets"]] == [t["id"] for t in before["targets"]]


@slow
def test_the_printed_url_sets_a_strict_cookie_and_drops_the_token(console):
    conn = http.client.HTTPConnection("127.0.0.1", console.port, timeout=60)
    try:
        conn.request("GET", f"/?token={console.token}")
        reply = conn.getresponse()
        reply.read()
    finally:
        conn.close()
    assert reply.status == 303 and reply.getheader("Location") == "/"
    cookie = reply.getheader("Set-Cookie")
    assert cookie == f"siammask_console_{console.port}={console.token}; HttpOnly; SameSite=Strict; Path=/"
    status, page = console.request("GET", "/", token=None, headers={"Cookie": cookie.split(";")[0]})
    assert status == 200 and b"siammask console" in page


@slow
def test_foreign_origin_and_host_are_refused(console):
    before = listing(console, "a")
    status, reply = console.request("POST", "/api/streams/a/pause", headers={"Origin": "http://attacker.example"})
    assert status == 403 and "only the console's own page" in reply["error"]
    status, reply = console.request("POST", "/api/streams/a/pause", headers={"Host": f"rebound.example:{console.port}"})
    assert status == 403 and "is not this console's address" in reply["error"]
    assert listing(console, "a")["paused"] is before["paused"] is False


@slow
def test_bodies_over_the_cap_and_malformed_ones_are_one_line_errors(console):
    status, reply = console.request("POST", "/api/streams/a/targets", b"[" * (MAX_BODY_BYTES + 1))
    assert status == 413 and reply == {"error": f"a body of {MAX_BODY_BYTES + 1} bytes is over the limit of "
                                                f"{MAX_BODY_BYTES}"}
    status, reply = console.request("POST", "/api/streams/a/targets", b'{"box": [1, 2')
    assert status == 400 and reply == {"error": raw_request(console.serve.control, b'{"box": [1, 2')["error"]}
    status, reply = console.request("POST", "/api/streams/a/targets", {"box": BOX, "extra": 1})
    assert status == 400 and reply["error"] == "'add_target' takes stream, box; unknown: extra"
    status, reply = console.request("GET", "/api/nothing")
    assert status == 404 and set(reply) == {"error"}
    assert console.serve.proc.poll() is None


@slow
@pytest.mark.parametrize("box", [[1, 2, 1, 1], [500, 2, 10, 10], [0, 0, 400, 400], [1, 2, 3]])
def test_a_bad_box_gets_the_refusal_ctl_gets(console, box):
    status, reply = console.request("POST", "/api/streams/a/targets", {"box": box})
    assert status == 400
    assert reply == {"error": console.serve.ctl({"cmd": "add_target", "stream": "a", "box": box})["error"]}


@slow
def test_unknown_stream_and_target_are_404_with_ctl_words(console):
    status, reply = console.request("POST", "/api/streams/nope/targets", {"box": BOX})
    assert status == 404
    assert reply["error"] == console.serve.ctl({"cmd": "add_target", "stream": "nope", "box": BOX})["error"]
    status, reply = console.request("DELETE", "/api/streams/a/targets/999")
    assert status == 404 and reply["error"].startswith("stream 'a' has no target 999")


@slow
def test_targets_pause_and_streams_through_the_api_with_events(console, own_stream):
    console.events(lambda e: e["event"] == "target_added" and e["stream"] == own_stream)
    added = console.ok("POST", f"/api/streams/{own_stream}/targets", {"box": BOX})
    assert set(added) == {"stream", "target", "frame"} and added["target"] == 1
    assert [t["id"] for t in listing(console, own_stream)["targets"]] == [0, 1]
    assert console.ok("POST", f"/api/streams/{own_stream}/pause") == {"stream": own_stream, "paused": True}
    assert listing(console, own_stream)["paused"] is True
    assert console.ok("POST", f"/api/streams/{own_stream}/resume") == {"stream": own_stream, "paused": False}
    assert console.ok("DELETE", f"/api/streams/{own_stream}/targets/1") == {"stream": own_stream, "target": 1}
    assert [t["id"] for t in listing(console, own_stream)["targets"]] == [0]
    seen = console.events(lambda e: e["event"] == "target_removed" and e["stream"] == own_stream)
    mine = [e["event"] for e in seen if e.get("stream") == own_stream and e["event"] not in ("lost", "found")]
    assert mine == ["stream_added", "target_added", "target_added", "paused", "resumed", "target_removed"]
    assert console.ok("DELETE", f"/api/streams/{own_stream}") == {"stream": own_stream}
    assert own_stream not in [s["id"] for s in console.serve.ctl({"cmd": "list"})["streams"]]
    status, reply = console.request("GET", f"/api/streams/{own_stream}/snapshot.png")
    assert status == 404 and reply == {"error": console.serve.ctl({"cmd": "pause", "stream": own_stream})["error"]}
    console.events(lambda e: e["event"] == "stream_removed" and e["stream"] == own_stream)


@slow
def test_the_event_stream_resumes_after_the_last_id_it_gave(console):
    assert console.ok("POST", "/api/streams/a/pause")["paused"] is True
    assert console.ok("POST", "/api/streams/a/resume")["paused"] is False
    kept = console.events(lambda e: e["event"] == "resumed" and e["stream"] == "a")
    paused = [e for e in kept if e["event"] == "paused"][-1]
    assert console.events(lambda e: True, after=paused["id"])[0]["id"] == paused["id"] + 1
    # an id this serve never gave (from before a restart of serve): everything kept, from the start
    assert console.events(lambda e: True, after=10**12)[0] == kept[0]


def first_pictures(console: Console, stream: str) -> dict:
    """Reads GET /api/frames until a picture of `stream` comes (liveness bound PAGE_WAIT_S)."""
    end = time.monotonic() + PAGE_WAIT_S
    with socket.create_connection(("127.0.0.1", console.port), timeout=PAGE_WAIT_S) as sock:
        sock.sendall(f"GET /api/frames HTTP/1.1\r\nHost: 127.0.0.1:{console.port}\r\n"
                     f"Authorization: Bearer {console.token}\r\n\r\n".encode())
        reader = sock.makefile("rb")
        while True:
            line = reader.readline()
            assert line, "the picture stream ended"
            assert time.monotonic() < end, f"no picture of {stream} within {PAGE_WAIT_S} s"
            if line.startswith(b"data: ") and json.loads(line[6:])["stream"] == stream:
                return json.loads(line[6:])


@slow
def test_a_paused_stream_still_shows_its_newest_picture(console, own_stream):
    """No viewer, so the sink encodes nothing; the stream is paused, so no frame comes: a viewer or a
    snapshot still gets its newest picture at once (the sink keeps each stream's newest frame)."""
    console.events(lambda e: e["event"] == "target_added" and e["stream"] == own_stream)
    assert console.ok("POST", f"/api/streams/{own_stream}/pause")["paused"] is True
    status, png = console.request("GET", f"/api/streams/{own_stream}/snapshot.png")
    assert status == 200 and cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR).shape == (120, 160, 3)
    picture = first_pictures(console, own_stream)
    jpeg = cv2.imdecode(np.frombuffer(base64.b64decode(picture["jpeg"]), np.uint8), cv2.IMREAD_COLOR)
    assert jpeg.shape == (120, 160, 3)
    assert listing(console, own_stream)["paused"] is True


@slow
def test_a_restarted_stage_is_an_event(console):
    pid = console.serve.ctl({"cmd": "list"})["processes"]["inference"]
    os.kill(pid, signal.SIGKILL)
    restarted = console.events(lambda e: e["event"] == "restarted" and e["stage"] == "inference"
                               and e["why"] == "was killed by signal 9")[-1]
    assert restarted["wait_s"] > 0
    eventually(lambda: console.ok("GET", "/api/streams")["restarts"].get("inference", 0) >= 1, PAGE_WAIT_S,
               "the restart in the figures (taken at most once a second)")
    # the next test finds the inference stage running again: a result after the restart
    last = collect(console.serve, 0, until=lambda m: m["stream"] == "a")[-1]["frame"]
    collect(console.serve, 0, timeout_s=120, until=lambda m: m["stream"] == "a" and m["frame"] > last + 5)


@slow
def test_snapshot_and_live_pictures_are_the_stream(console):
    status, png = console.request("GET", "/api/streams/a/snapshot.png")
    assert status == 200 and png[:8] == b"\x89PNG\r\n\x1a\n"
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (120, 160, 3) and image.std() > 10
    frame = first_pictures(console, "a")
    jpeg = cv2.imdecode(np.frombuffer(base64.b64decode(frame["jpeg"]), np.uint8), cv2.IMREAD_COLOR)
    assert jpeg.shape == (120, 160, 3)


# --- the page in a real browser ------------------------------------------------------------------------

def find(selector: str) -> str:
    """JavaScript for the first element matching a CSS selector."""
    return f"document.querySelector({json.dumps(selector)})"


def exists(selector: str) -> str:
    """JavaScript: whether an element matches (an element itself comes back as an empty, falsy dict)."""
    return f"!!{find(selector)}"


@slow
def test_the_page_in_headless_chromium_as_an_operator_uses_it(console, own_stream, synthetic_video, tmp_path):
    panel = f"[data-stream='{own_stream}']"
    browser = Browser(tmp_path / "profile")
    try:
        browser.open(console.url)  # the printed URL: sets the cookie, then the page loads without the token
        browser.wait_for(exists(panel), PAGE_WAIT_S, "the stream's panel")
        assert browser.evaluate("location.href") == f"http://127.0.0.1:{console.port}/"
        shown = browser.evaluate("[...document.querySelectorAll('[data-stream]')].map(e => e.dataset.stream)")
        assert set(shown) == {s["id"] for s in console.serve.ctl({"cmd": "list"})["streams"]}
        picture = find(f"{panel} img")
        assert browser.wait_for(f"{picture}.naturalWidth", PAGE_WAIT_S, "the stream's picture") == 160
        browser.wait_for(exists(f"{panel} tr[data-target='0']"), PAGE_WAIT_S, "target 0 in the panel")
        left, top, width, height = browser.evaluate(f"(r => [r.left, r.top, r.width, r.height])"
                                                    f"({picture}.getBoundingClientRect())")
        # drag from (40, 30) to (100, 90) in the stream's pixels: a 60x60 box
        browser.drag((left + 40 * width / 160, top + 30 * height / 120),
                     (left + 100 * width / 160, top + 90 * height / 120))
        browser.wait_for(exists(f"{panel} tr[data-target='1']"), PAGE_WAIT_S, "the drawn target in the panel")
        assert 1 in [t["id"] for t in listing(console, own_stream)["targets"]]
        added = console.events(lambda e: e["event"] == "target_added" and e.get("stream") == own_stream
                               and e["target"] == 1)[-1]
        assert added["box"] == pytest.approx([40, 30, 60, 60], abs=1.5)  # display pixels mapped to the stream's
        browser.wait_for("[...document.querySelectorAll('#events li')].some(li => li.dataset.event === 'target_added')",
                         PAGE_WAIT_S, "the event in the log")
        browser.screenshot(tmp_path / "console.png")

        # a box too small for ctl is refused on the page in ctl's words
        browser.drag((left + 10, top + 10), (left + 13, top + 13))
        refusal = console.serve.ctl({"cmd": "add_target", "stream": own_stream, "box": [0, 0, 1, 1]})["error"]
        assert "smaller than 2 px" in refusal
        browser.wait_for(f"{find(panel + ' .message')}.textContent.includes('smaller than 2 px')", PAGE_WAIT_S,
                         "the refusal on the page")

        def press(selector: str) -> None:
            x, y = browser.evaluate(f"(r => [r.left + r.width / 2, r.top + r.height / 2])"
                                    f"({find(selector)}.getBoundingClientRect())")
            browser.click(x, y)

        press(f"{panel} tr[data-target='1'] button[data-action='remove-target']")
        removed = exists(f"{panel} tr[data-target='1']")
        browser.wait_for(f"!{removed}", PAGE_WAIT_S, "the removed target to leave the panel")
        assert [t["id"] for t in listing(console, own_stream)["targets"]] == [0]
        press(f"{panel} button[data-action='pause']")
        browser.wait_for(f"{find(panel + ' .badge')}.textContent === 'paused'", PAGE_WAIT_S, "the stream shown paused")
        assert listing(console, own_stream)["paused"] is True
        press(f"{panel} button[data-action='pause']")  # it reads Resume now
        browser.wait_for(f"{find(panel + ' .badge')}.textContent === 'running'", PAGE_WAIT_S, "the stream running")
        assert listing(console, own_stream)["paused"] is False

        # the form adds a stream with a first box; its button removes it
        added = f"f-{uuid.uuid4().hex[:8]}"
        for name, text in (("id", added), ("source", str(synthetic_video)), ("box", "25,19,26,19")):
            press(f"#add-stream input[name='{name}']")
            browser.type(text)
        press("#add-stream input[name='loop']")
        press("#add-stream button[type='submit']")
        browser.wait_for(exists(f"[data-stream='{added}'] tr[data-target='0']"), PAGE_WAIT_S, "the added stream")
        stream = listing(console, added)
        assert stream["source"] == str(synthetic_video)
        assert [*stream["pending"], *(t["id"] for t in stream["targets"])] == [0]  # the form's box
        press(f"[data-stream='{added}'] button[data-action='remove-stream']")
        gone = exists(f"[data-stream='{added}']")
        browser.wait_for(f"!{gone}", PAGE_WAIT_S, "the removed stream to leave the page")
        assert added not in [s["id"] for s in console.serve.ctl({"cmd": "list"})["streams"]]
    finally:
        browser.close()


# --- hostile clients -------------------------------------------------------------------------------------

def frames_viewer(console: Console) -> socket.socket:
    """A /api/frames viewer that reads nothing after its request (its buffers fill, then it stalls)."""
    sock = socket.create_connection(("127.0.0.1", console.port), timeout=60)
    sock.sendall(f"GET /api/frames HTTP/1.1\r\nHost: 127.0.0.1:{console.port}\r\n"
                 f"Authorization: Bearer {console.token}\r\n\r\n".encode())
    return sock


@slow
def test_half_open_connections_stalled_viewers_and_garbage_never_stop_serve(console):
    sockets = [socket.create_connection(("127.0.0.1", console.port), timeout=60) for _ in range(100)]  # say nothing
    sockets += [frames_viewer(console) for _ in range(20)]
    try:
        # results go on being published while every console connection is taken
        msgs = collect(console.serve, 0, until=lambda m: m["stream"] == "a" and m["frame"] > 0)
        before = msgs[-1]["frame"]
        collect(console.serve, 0, until=lambda m: m["stream"] == "a" and m["frame"] > before + 20)
    finally:
        for sock in sockets:
            sock.close()
    for raw in (b"\x00\xff garbage\r\n\r\n", b"GET / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
                b"POST /api/streams/a/targets HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", console.port), timeout=60) as sock:
            sock.sendall(raw)
            answer = sock.makefile("rb").readline()
        assert answer.split()[1:2] in ([b"400"], [b"401"], [b"403"]), (raw, answer)
    assert console.ok("GET", "/api/streams")["streams"]  # the console answers again at once
    assert console.serve.proc.poll() is None and "Traceback" not in console.serve.log()


@slow
def test_the_console_on_a_shared_video_with_a_drawn_target(tmp_path):
    """The picture in the README: the shipped weights on a real video, one target from the config
    (the person) and one drawn with the mouse. SIAMMASK_CONSOLE_SCREENSHOT=PATH keeps the screenshot
    (a 64-colour PNG, as docs/console.png was made)."""
    video = DATA / "videos" / "oneperson.mp4"
    if not video.is_file():
        pytest.skip(f"{video} is missing (the shared data, see tests/reference.py)")
    config = {"streams": [{"id": "warehouse", "source": str(video), "boxes": [[198, 112, 72, 175]]}],
              "model": {"threads": 1}, "publish": ANY_PORT, "metrics_port": 0,
              "console": {"listen": "127.0.0.1:0"}, "log_interval_s": 0}
    with serving(tmp_path, config) as serve:
        console = Console(serve)
        browser = Browser(tmp_path / "profile", width=1000, height=640)
        try:
            browser.open(console.url)
            picture = find("[data-stream='warehouse'] img")
            assert browser.wait_for(f"!!{picture} && {picture}.naturalWidth", PAGE_WAIT_S, "the picture") == 620
            left, top, width, height = browser.evaluate(f"(r => [r.left, r.top, r.width, r.height])"
                                                        f"({picture}.getBoundingClientRect())")
            scale = width / 620
            browser.drag((left + 540 * scale, top + 160 * scale), (left + 575 * scale, top + 210 * scale))  # red cart
            browser.wait_for(exists("[data-stream='warehouse'] tr[data-target='1']"), PAGE_WAIT_S, "the drawn target")
            browser.wait_for(f"{picture}.src.length > 1000", PAGE_WAIT_S, "a picture after the drawing")
            shot = tmp_path / "console.png"
            browser.screenshot(shot)
        finally:
            browser.close()
    image = cv2.imread(str(shot))
    assert image.shape[:2] == (640, 1000) and image.std() > 20
    if os.environ.get("SIAMMASK_CONSOLE_SCREENSHOT"):
        from PIL import Image
        Image.open(shot).convert("RGB").quantize(64).save(os.environ["SIAMMASK_CONSOLE_SCREENSHOT"], optimize=True)
