"""`siammask serve` end to end: real processes, real ZeroMQ sockets, a real browser.

One pipeline (a looping synthetic video played faster than the slowed-down inference stage can take
it) serves the tests of this module in order: messages and drop accounting, metrics, a slow
subscriber, control, the preview page, killing the inference process, and finally SIGTERM. The
lite model has random weights, so tracking quality means nothing here; structure and invariants do.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import zmq

from pipeline_support import (ENV, START_TIMEOUT_S, Subscriber, check_accounting, collect, descendants,
                              free_port, raw_request, serving, survivors)

MESSAGE_KEYS = {"stream", "frame", "capture_ts", "latency_ms", "stages_ms", "dropped", "paused_frames", "width",
                "height", "targets"}
RECORD_KEYS = {"frame", "box", "polygon", "score", "lost", "mask", "target"}
STAGES = {"capture", "to_inference", "queue", "preprocess", "infer", "postprocess", "to_sink", "publish"}
BOX = [25.0, 19.0, 26.0, 19.0]  # the synthetic object on frame 0 (seed 3, 160x120)
QUEUE_BOUND = 12                # frames that can wait between capture and inference (HWMs + socket buffers)
SLOW_BACKLOG_BOUND = 400        # messages a stuck subscriber can have queued (HWMs + 64 KiB + 4 KiB of buffers)


@pytest.fixture(scope="module")
def served(tmp_path_factory, synthetic_video, lite):
    tmp = tmp_path_factory.mktemp("serve")
    config = {
        "streams": [{"id": "a", "source": str(synthetic_video), "loop": True, "fps": 50.0, "boxes": [BOX]}],
        "model": {"weights": str(lite), "threads": 1},
        "publish": f"tcp://127.0.0.1:{free_port()}", "control": f"tcp://127.0.0.1:{free_port()}",
        "metrics_port": free_port(), "preview_port": free_port(),
        "outputs": {"jsonl": str(tmp / "results.jsonl")},
        "log_interval_s": 1.0,
        "inference_delay_ms": 30.0,  # slower than the 50 fps source: the inference stage must drop
    }
    with serving(tmp, config) as serve:
        yield serve


def test_one_message_per_processed_frame(served):
    msgs = collect(served, 40)
    for m in msgs:
        assert set(m) == MESSAGE_KEYS and m["stream"] == "a" and (m["width"], m["height"]) == (160, 120)
        assert set(m["stages_ms"]) == STAGES and m["latency_ms"] > 0
        assert [t["target"] for t in m["targets"]] == [0]
        record = m["targets"][0]
        assert set(record) == RECORD_KEYS and record["frame"] == m["frame"]
        assert record["mask"]["size"] == [120, 160] and len(record["polygon"]) == 8
    check_accounting(msgs)
    assert sum(m["dropped"]["inference"] for m in msgs) > 0, "the slowed inference stage dropped nothing"
    assert all(m["dropped"]["inference"] <= QUEUE_BOUND for m in msgs), "frames piled up before inference"


def test_metrics_and_summary_line(served):
    metrics = served.metrics()
    assert metrics['siammask_frames_total{stage="publish",stream="a"}'] > 0
    assert metrics['siammask_dropped_frames_total{stage="inference",stream="a"}'] > 0
    assert 1 <= metrics['siammask_queue_depth{stream="a"}'] <= QUEUE_BOUND
    for stage in STAGES:
        assert metrics[f'siammask_stage_seconds_count{{stage="{stage}"}}'] > 0
    assert metrics['siammask_latency_seconds_bucket{le="+Inf",stream="a"}'] > 0
    def summaries() -> list[str]:  # an interval in which no frame was published says "latency n/a"
        return [l for l in served.log().splitlines() if "[summary]: a " in l and "latency p50" in l]

    deadline = time.monotonic() + 30
    while not summaries() and time.monotonic() < deadline:
        time.sleep(0.5)
    line = summaries()[0]
    assert " fps (read " in line and "dropped capture=" in line and "inference=" in line


def test_slow_subscriber_loses_counted_messages_and_holds_no_one_back(served):
    ctx = zmq.Context()
    slow = Subscriber(served.config["publish"], ctx=ctx, hwm=1, rcvbuf=4096)  # reads nothing until the end
    fast = Subscriber(served.config["publish"], ctx=ctx)
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


def test_control_targets_pause_and_errors(served):
    ctl = served.ctl
    listing = ctl({"cmd": "list"})
    assert [s["id"] for s in listing["streams"]] == ["a"] and listing["streams"][0]["pending"] == []
    assert [t["id"] for t in listing["streams"][0]["targets"]] == [0]
    assert set(listing["processes"]) == {"sink", "inference", "capture a"}

    added = ctl({"cmd": "add_target", "stream": "a", "box": [100, 60, 30, 30]})
    assert added["ok"] and added["target"] == 1, added
    collect(served, 0, until=lambda m: target_ids(m) == [0, 1])
    assert ctl({"cmd": "remove_target", "stream": "a", "target": 0})["ok"]
    collect(served, 0, until=lambda m: target_ids(m) == [1])

    errors = {
        "unknown target": ctl({"cmd": "remove_target", "stream": "a", "target": 99}),
        "unknown stream": ctl({"cmd": "pause", "stream": "nope"}),
        "outside": ctl({"cmd": "add_target", "stream": "a", "box": [500, 500, 10, 10]}),
        "zero size": ctl({"cmd": "add_target", "stream": "a", "box": [10, 10, 0, 10]}),
        "bad box": ctl({"cmd": "add_target", "stream": "a", "box": [10, 10, 5]}),
        "unknown command": ctl({"cmd": "explode"}),
        "not json": raw_request(served.config["control"], b"\xff{nonsense"),
        "bad source": ctl({"cmd": "add_stream", "stream": {"id": "b", "source": "/no/such.avi"}}),
        "bad stream key": ctl({"cmd": "add_stream", "stream": {"id": "b", "source": "0", "colour": 1}}),
    }
    for what, reply in errors.items():
        assert reply["ok"] is False and reply["error"], (what, reply)
    assert "no target 99" in errors["unknown target"]["error"]
    assert "outside the 160x120 frame" in errors["outside"]["error"]
    after = ctl({"cmd": "list"})["streams"]
    assert [t["id"] for s in after for t in s["targets"]] == [1] and [s["id"] for s in after] == ["a"]

    sub = Subscriber(served.config["publish"])
    try:
        last = sub.wait_for(lambda m: True, 30, "results before the pause")[-1]["frame"]
        assert ctl({"cmd": "pause", "stream": "a"})["paused"] is True
        time.sleep(1.0)
        while (msg := sub.recv(0.2)) is not None:  # results already on their way when the pause arrived
            last = msg["frame"]
        assert sub.recv(1.5) is None, "a paused stream kept publishing"
        assert ctl({"cmd": "resume", "stream": "a"})["paused"] is False
        resumed = sub.wait_for(lambda m: True, 30, "results after resume")[0]
    finally:
        sub.close()
    # A file holds its place while paused (~3 s = 150 frames at 50 fps): after the last result
    # published before the pause, only frames that were queued between capture and inference
    # are skipped (and reported as paused_frames or drops), however long the pause took to land.
    assert resumed["frame"] - last <= QUEUE_BOUND + 3, (last, resumed["frame"])  # + the frames being read and tracked
    assert target_ids(resumed) == [1]


def test_control_streams_with_the_ctl_command(served, synthetic_video):
    def ctl(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "siammask.cli", "ctl", "--control", served.config["control"],
                               *args], capture_output=True, text=True, timeout=60, env=ENV)

    added = ctl("add-stream", "b", str(synthetic_video), "--loop", "--box", ",".join(map(str, BOX)))
    assert added.returncode == 0 and json.loads(added.stdout)["targets"] == [0], added.stderr
    sub = Subscriber(served.config["publish"])
    try:
        sub.wait_for(lambda m: m["stream"] == "b" and target_ids(m) == [0], START_TIMEOUT_S, "results of stream b")
        assert ctl("remove-stream", "b").returncode == 0
        sub.wait_for(lambda m: m == {"stream": "b", "end": True}, 30, "the end of stream b")
    finally:
        sub.close()
    again = ctl("remove-stream", "b")
    assert again.returncode == 2 and again.stderr.strip() == "siammask: error: no stream 'b'; streams: a"
    listing = json.loads(ctl("list").stdout)
    assert [s["id"] for s in listing["streams"]] == ["a"] and "capture b" not in listing["processes"]


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
    # Target 1 is drawn in target_color(1) = BGR (255, 128, 0): its polygon and mask tint.
    assert _drawn_pixels(image) > 30, "no annotation colour in the screenshot"


def _drawn_pixels(image: np.ndarray) -> int:
    b, g, r = (image[..., i].astype(int) for i in range(3))
    return int(((b > 180) & (r < 90) & (g > 60) & (g < 200)).sum())


def test_killed_inference_process_is_restarted_with_its_targets(served):
    before = collect(served, 3)
    ids = target_ids(before[-1])
    pid = served.ctl({"cmd": "list"})["processes"]["inference"]
    os.kill(pid, signal.SIGKILL)
    after = collect(served, 0, timeout_s=START_TIMEOUT_S, until=lambda m: m["frame"] > before[-1]["frame"] + 5)
    assert target_ids(after[-1]) == ids
    assert served.ctl({"cmd": "list"})["processes"]["inference"] != pid
    assert "inference was killed by signal 9; restarting" in served.log()
    assert served.metrics()['siammask_restarts_total{stage="inference"}'] == 1


def test_sigterm_stops_everything_and_leaves_complete_outputs(served):
    live = collect(served, 5)
    children = descendants(served.proc.pid)
    assert len(children) >= 3
    assert served.stop() == 0
    assert survivors(children) == [], "processes outlived serve"
    assert served.leftovers() == [], "serve left files in its temporary folder"
    text = Path(served.config["outputs"]["jsonl"]).read_text()
    assert text.endswith("\n")
    lines = [json.loads(line) for line in text.splitlines()]
    assert {m["stream"] for m in lines} == {"a", "b"}
    frames = [m["frame"] for m in lines if m["stream"] == "a"]
    assert frames == sorted(set(frames)), "frame ids in the JSON lines are not increasing"
    assert {m["frame"] for m in live} <= set(frames), "published results missing from the JSON lines"
    assert set(lines[-1]) == MESSAGE_KEYS
