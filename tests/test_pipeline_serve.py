"""`siammask serve` end to end: real processes, real ZeroMQ sockets, a real browser.

One pipeline (a looping synthetic video played faster than the slowed-down inference stage can take
it) serves most tests of this module. None depends on another's effects, so each passes alone and
in any order: a test that changes the registry does it on a stream of its own and removes it, the
kill test compares restart counters before and after, and the SIGTERM test stops a pipeline of its
own. Waits are on replies and observed results, never on sleeps. The lite model has random
weights, so tracking quality means nothing here; structure and invariants do.
"""
from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest
import zmq

from siammask.config import CONFIG_DIR
from siammask.io.annotate import target_color

from pipeline_support import (ANY_PORT, ENV, QUEUE_BOUND, START_TIMEOUT_S, Subscriber, check_accounting, collect, descendants,
                              eventually, free_port, raw_request, serving, survivors)

MESSAGE_KEYS = {"stream", "frame", "capture_ts", "latency_ms", "stages_ms", "dropped", "paused_frames", "width",
                "height", "targets"}
RECORD_KEYS = {"frame", "box", "polygon", "score", "presence", "lost", "found", "mask", "target"}
STAGES = {"capture", "to_inference", "queue", "preprocess", "infer", "postprocess", "to_sink", "publish"}
BOX = [25.0, 19.0, 26.0, 19.0]  # the synthetic object on frame 0 (seed 3, 160x120)
SLOW_BACKLOG_BOUND = 400        # messages a stuck subscriber can have queued (HWMs + 64 KiB + 4 KiB of buffers)
pytestmark = pytest.mark.slow   # every test runs serve's processes


def serve_config(tmp: Path, video: Path, lite: Path, streams: tuple[str, ...] = ("a",)) -> dict:
    # davis with lost_threshold 0: the random weights' presence would flag the target lost within a few
    # frames (then drawn dashed grey without its mask); these tests want it drawn tracked, in its colour
    hp = tmp / "tracking.yaml"
    hp.write_text((CONFIG_DIR / "hp" / "davis.yaml").read_text() + "lost_threshold: 0.0\n")
    return {
        "streams": [{"id": s, "source": str(video), "loop": True, "fps": 50.0, "boxes": [BOX]} for s in streams],
        "model": {"weights": str(lite), "hp": str(hp), "threads": 1},
        "publish": ANY_PORT,
        "metrics_port": free_port(), "preview_port": free_port(),  # HTTP: ZeroMQ cannot pick these
        "outputs": {"jsonl": str(tmp / "results.jsonl")},
        "log_interval_s": 1.0,
        "inference_delay_ms": 30.0,  # slower than the 50 fps source: the inference stage must drop
    }


@pytest.fixture(scope="module")
def served(tmp_path_factory, synthetic_video, lite):
    tmp = tmp_path_factory.mktemp("serve")
    with serving(tmp, serve_config(tmp, synthetic_video, lite)) as serve:
        yield serve


@pytest.fixture
def own_stream(served, synthetic_video):
    """A stream of the test's own on the shared pipeline (target 0 on BOX), removed afterwards: the
    next test starts once its last message has been published."""
    stream_id = f"t-{uuid.uuid4().hex[:8]}"
    reply = served.ctl({"cmd": "add_stream", "stream": {"id": stream_id, "source": str(synthetic_video),
                                                        "loop": True, "fps": 50.0, "boxes": [BOX]}})
    assert reply["ok"], reply
    yield stream_id
    sub = Subscriber(served.publish)
    try:
        sub.wait_for(lambda m: True, START_TIMEOUT_S, "a message (the subscription is in place)")
        assert served.ctl({"cmd": "remove_stream", "stream": stream_id})["ok"]
        sub.wait_for(lambda m: m == {"stream": stream_id, "end": True}, 30, "the stream's last message")
    finally:
        sub.close()


def test_one_message_per_processed_frame(served):
    msgs = collect(served, 40)
    for m in msgs:
        assert set(m) == MESSAGE_KEYS and m["stream"] == "a" and (m["width"], m["height"]) == (160, 120)
        assert set(m["stages_ms"]) == STAGES and m["latency_ms"] > 0
        assert [t["target"] for t in m["targets"]] == [0]
        record = m["targets"][0]
        assert set(record) == RECORD_KEYS and record["frame"] == m["frame"]
        assert 0.0 <= record["presence"] <= 1.0 and type(record["lost"]) is type(record["found"]) is bool
        assert record["lost"] is record["found"] is False  # lost_threshold 0 (serve_config)
        assert record["mask"]["size"] == [120, 160] and len(record["polygon"]) == 8
    check_accounting(msgs)
    assert sum(m["dropped"]["inference"] for m in msgs) > 0, "the slowed inference stage dropped nothing"
    assert all(m["dropped"]["inference"] <= QUEUE_BOUND for m in msgs), "frames piled up before inference"


def test_metrics_and_summary_line(served):
    # the counters below hold once a published message has reported a drop at the inference stage
    collect(served, 0, until=lambda m: m["stream"] == "a" and m["dropped"]["inference"] > 0)
    metrics = served.metrics()
    assert metrics['siammask_frames_total{stage="publish",stream="a"}'] > 0
    assert metrics['siammask_dropped_frames_total{stage="inference",stream="a"}'] > 0
    assert 1 <= metrics['siammask_queue_depth{stream="a"}'] <= QUEUE_BOUND
    for stage in STAGES:
        assert metrics[f'siammask_stage_seconds_count{{stage="{stage}"}}'] > 0
    assert metrics['siammask_latency_seconds_bucket{le="+Inf",stream="a"}'] > 0
    def summaries() -> list[str]:  # an interval in which no frame was published says "latency n/a"
        return [l for l in served.log().splitlines() if "[summary]: a " in l and "latency p50" in l]

    line = eventually(summaries, 60, "a summary line with a latency", served, interval_s=0.5)[0]
    assert " fps (read " in line and "dropped capture=" in line and "inference=" in line


def test_slow_subscriber_loses_counted_messages_and_holds_no_one_back(served):
    ctx = zmq.Context()
    slow = Subscriber(served.publish, ctx=ctx, hwm=1, rcvbuf=4096)  # reads nothing until the end
    fast = Subscriber(served.publish, ctx=ctx)
    try:
        fast_msgs = fast.wait_for(lambda m: m["dropped"]["publish"] > 0, 120, "a counted publish drop")
        fast_msgs += fast.wait_for(lambda m: True, 10, "the next message")
        newest = fast_msgs[-1]["frame"]
        slow_msgs = slow.wait_for(lambda m: m["frame"] >= newest, 60, "the slow subscriber to catch up")
    finally:
        slow.close(), fast.close(), ctx.term()
    check_accounting(fast_msgs)  # the fast subscriber missed nothing while the slow one was stuck
    assert served.metrics()['siammask_dropped_frames_total{stage="publish",stream="a"}'] > 0
    lost = [b["frame"] - a["frame"] - 1 - sum(b["dropped"][k] for k in ("capture", "inference", "sink"))
            - b["paused_frames"] for a, b in zip(slow_msgs, slow_msgs[1:])]
    assert sum(lost) > 0, "the stuck subscriber lost nothing, so everything was queued for it"
    held = next(i for i, n in enumerate(lost) if n > 0) + 1
    assert held <= SLOW_BACKLOG_BOUND, f"{held} messages were queued for a stuck subscriber"


def target_ids(msg: dict) -> list[int]:
    return [t["target"] for t in msg["targets"]]


def test_control_targets_and_errors(served, own_stream):
    ctl = served.ctl
    stream = own_stream
    listing = ctl({"cmd": "list"})
    mine = next(s for s in listing["streams"] if s["id"] == stream)
    assert mine["targets"] == [] and mine["pending"] == [0]  # starts on the stream's first frame
    assert f"capture {stream}" in listing["processes"] and {"sink", "inference"} <= set(listing["processes"])
    collect(served, 0, timeout_s=START_TIMEOUT_S, until=lambda m: m["stream"] == stream and target_ids(m) == [0])

    added = ctl({"cmd": "add_target", "stream": stream, "box": [100, 60, 30, 30]})
    assert added["ok"] and added["target"] == 1, added
    collect(served, 0, until=lambda m: m["stream"] == stream and target_ids(m) == [0, 1])
    assert ctl({"cmd": "remove_target", "stream": stream, "target": 0})["ok"]
    collect(served, 0, until=lambda m: m["stream"] == stream and target_ids(m) == [1])

    errors = {
        "unknown target": ctl({"cmd": "remove_target", "stream": stream, "target": 99}),
        "unknown stream": ctl({"cmd": "pause", "stream": "nope"}),
        "outside": ctl({"cmd": "add_target", "stream": stream, "box": [500, 500, 10, 10]}),
        "zero size": ctl({"cmd": "add_target", "stream": stream, "box": [10, 10, 0, 10]}),
        "bad box": ctl({"cmd": "add_target", "stream": stream, "box": [10, 10, 5]}),
        "unknown command": ctl({"cmd": "explode"}),
        "not json": raw_request(served.control, b"\xff{nonsense"),
        "bad source": ctl({"cmd": "add_stream", "stream": {"id": "b", "source": "/no/such.avi"}}),
        "bad stream key": ctl({"cmd": "add_stream", "stream": {"id": "b", "source": "0", "colour": 1}}),
        "existing stream": ctl({"cmd": "add_stream", "stream": {"id": stream, "source": "0"}}),
    }
    for what, reply in errors.items():
        assert reply["ok"] is False and reply["error"], (what, reply)
    assert "no target 99" in errors["unknown target"]["error"]
    assert "outside the 160x120 frame" in errors["outside"]["error"]
    after = ctl({"cmd": "list"})["streams"]
    assert [[t["id"] for t in s["targets"]] for s in after if s["id"] == stream] == [[1]]
    assert "b" not in [s["id"] for s in after]


def test_pause_is_confirmed_and_holds_a_file_in_place(served, own_stream):
    """After the pause reply no frame of the stream is processed: its results already on their way
    arrive before any result of stream 'a' read after the reply (one ordered queue runs from the
    inference stage to each subscriber), and none after it."""
    stream = own_stream
    sub = Subscriber(served.publish)
    try:
        last = sub.wait_for(lambda m: m["stream"] == stream, START_TIMEOUT_S, "results before the pause")[-1]["frame"]
        assert served.ctl({"cmd": "pause", "stream": stream}) == {"ok": True, "stream": stream, "paused": True}
        confirmed = time.time()
        in_flight = sub.wait_for(lambda m: m["stream"] == "a" and m["capture_ts"] > confirmed, 30,
                                 "a result of stream 'a' read after the pause")
        last = max([last] + [m["frame"] for m in in_flight if m["stream"] == stream])
        of_a = itertools.count(1)
        after = sub.wait_for(lambda m: m["stream"] == "a" and next(of_a) >= 10, 30, "10 more results of stream 'a'")
        assert [m for m in after if m["stream"] == stream] == [], "a paused stream kept publishing"
        assert served.ctl({"cmd": "resume", "stream": stream})["paused"] is False
        resumed = sub.wait_for(lambda m: m["stream"] == stream, 30, "results after resume")[-1]
    finally:
        sub.close()
    # A file holds its place while paused (~ the 10 results of 'a' = 0.4 s = 20 frames at 50 fps): after
    # the last result published before the pause, only frames that were queued between capture and
    # inference are skipped (and reported as paused_frames or drops).
    assert resumed["frame"] - last <= QUEUE_BOUND + 3, (last, resumed["frame"])  # + the frames being read and tracked
    assert resumed["paused_frames"] + sum(resumed["dropped"][k] for k in ("capture", "inference", "sink")) \
        == resumed["frame"] - last - 1
    assert target_ids(resumed) == [0]


def test_control_streams_with_the_ctl_command(served, synthetic_video):
    def ctl(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "siammask.cli", "ctl", "--control", served.control,
                               *args], capture_output=True, text=True, timeout=60, env=ENV)

    stream = f"b-{uuid.uuid4().hex[:8]}"
    sub = Subscriber(served.publish)
    try:
        added = ctl("add-stream", stream, str(synthetic_video), "--loop", "--box", ",".join(map(str, BOX)))
        assert added.returncode == 0 and json.loads(added.stdout)["targets"] == [0], added.stderr
        sub.wait_for(lambda m: m["stream"] == stream and target_ids(m) == [0], START_TIMEOUT_S, "results of the stream")
        assert ctl("remove-stream", stream).returncode == 0
        sub.wait_for(lambda m: m == {"stream": stream, "end": True}, 30, "the end of the stream")
    finally:
        sub.close()
    listing = json.loads(ctl("list").stdout)
    others = ", ".join(s["id"] for s in listing["streams"])
    again = ctl("remove-stream", stream)
    assert again.returncode == 2 and again.stderr.strip() == f"siammask: error: no stream '{stream}'; streams: {others}"
    assert stream not in others and f"capture {stream}" not in listing["processes"]


def test_preview_page_in_headless_chromium(served, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (.ci/run installs Debian's chromium package)")
    url = f"http://127.0.0.1:{served.config['preview_port']}/"
    shot = tmp_path / "preview.png"
    for _ in range(3):  # the first frame reaches a new viewer with the next processed frame
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--no-first-run",
                        f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=400,300",
                        "--timeout=4000", url], capture_output=True, timeout=120, cwd=tmp_path)
        image = cv2.imread(str(shot))
        if image is not None and _drawn_pixels(image) > 30:
            break
    assert image is not None, "chromium wrote no screenshot"
    assert image.std() > 20, "the screenshot is blank"
    # Stream a's target 0 is drawn in target_color(0) (its polygon and mask tint), a colour the
    # synthetic scene does not have.
    assert _drawn_pixels(image) > 30, "no annotation colour in the screenshot"


def _drawn_pixels(image: np.ndarray, color: tuple[int, int, int] = target_color(0)) -> int:
    """Pixels near `color` (BGR) as a JPEG stream shows it: each channel high, middling or low as its
    value is 255, 128 or 0."""
    near = np.ones(image.shape[:2], bool)
    for channel, value in enumerate(color):
        c = image[..., channel].astype(int)
        near &= (c > 180) if value == 255 else (c < 90) if value == 0 else ((c > 60) & (c < 200))
    return int(near.sum())


def test_killed_inference_process_is_restarted_with_its_targets(served):
    restarts = 'siammask_restarts_total{stage="inference"}'
    before = collect(served, 3, until=lambda m: m["stream"] == "a")
    ids = target_ids(before[-1])
    restarted = served.metrics().get(restarts, 0.0)
    pid = served.ctl({"cmd": "list"})["processes"]["inference"]
    os.kill(pid, signal.SIGKILL)
    after = collect(served, 0, timeout_s=START_TIMEOUT_S,
                    until=lambda m: m["stream"] == "a" and m["frame"] > before[-1]["frame"] + 5)
    assert target_ids(after[-1]) == ids
    assert served.ctl({"cmd": "list"})["processes"]["inference"] != pid
    assert "inference was killed by signal 9; restarting" in served.log()
    assert served.metrics()[restarts] == restarted + 1


def test_sigterm_stops_everything_and_leaves_complete_outputs(tmp_path, synthetic_video, lite):
    with serving(tmp_path, serve_config(tmp_path, synthetic_video, lite, streams=("a", "b"))) as serve:
        seen: set[str] = set()
        live = collect(serve, 0, until=lambda m: seen.add(m["stream"]) or seen == {"a", "b"})
        children = descendants(serve.proc.pid)
        assert len(children) >= 4
        assert serve.stop() == 0
        assert survivors(children) == [], "processes outlived serve"
        assert serve.leftovers() == [], "serve left files in its temporary folder"
    text = Path(serve.config["outputs"]["jsonl"]).read_text()
    assert text.endswith("\n")
    lines = [json.loads(line) for line in text.splitlines()]
    assert {m["stream"] for m in lines} == {"a", "b"}
    for stream in ("a", "b"):
        frames = [m["frame"] for m in lines if m["stream"] == stream]
        assert frames == sorted(set(frames)), "frame ids in the JSON lines are not increasing"
        published = {m["frame"] for m in live if m["stream"] == stream}
        assert published <= set(frames), "published results missing from the JSON lines"
    assert set(lines[-1]) == MESSAGE_KEYS


def test_a_new_preview_viewer_of_a_paused_stream_gets_its_newest_picture_at_once(served, own_stream):
    """Nothing is encoded while no one watches: the sink keeps each stream's newest frame and draws it
    for the first viewer, so a paused stream is not a blank page (it was, until it resumed)."""
    sub = Subscriber(served.publish)
    try:
        sub.wait_for(lambda m: m.get("stream") == own_stream and "targets" in m, START_TIMEOUT_S, "a result")
    finally:
        sub.close()
    assert served.ctl({"cmd": "pause", "stream": own_stream})["ok"]
    try:
        url = f"http://127.0.0.1:{served.config['preview_port']}/stream/{own_stream}.mjpg"
        with urllib.request.urlopen(url, timeout=30) as response:
            head = b""
            while b"\r\n\r\n" not in head:
                head += response.read(1)
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            picture = cv2.imdecode(np.frombuffer(response.read(length), np.uint8), cv2.IMREAD_COLOR)
        assert picture is not None and picture.std() > 20
        assert _drawn_pixels(picture) > 30  # annotated: its target is drawn
        eventually(lambda: f"{own_stream} paused, dropped " in served.log(), 60,  # not "0.0 fps"
                   "the summary line saying the stream is paused", served, interval_s=0.5)
    finally:
        assert served.ctl({"cmd": "resume", "stream": own_stream})["ok"]
