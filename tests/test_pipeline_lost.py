"""A target that disappears and comes back, in a real `siammask serve` with the shipped default
weights (their presence estimate is the trained one): the lost and found events reach a ZeroMQ
subscriber of the publish endpoint right after their frame's message, `ctl list` shows the target's
state, the metrics count lost targets and re-acquisitions, and a removed stream's series go.

The clip (pipeline_support.disappearing_clip) is played at 5 fps; the stream is paused as soon as
the lost event arrives, so `ctl list` and the metrics are read while the target is surely lost, then
resumed until it is found again, and paused again to read them. The pause is answered once the
inference stage applies it, so every event it sent before has reached the supervisor by then.
Waits are on messages and replies, never on sleeps."""
from __future__ import annotations

import cv2
import pytest

from pipeline_support import (ANY_PORT, FOUND_BY, GONE, START_TIMEOUT_S, Serve, Subscriber, disappearing_clip,
                              free_port)

BOX = [25.0, 19.0, 26.0, 19.0]  # the synthetic object on frame 0 (seed 3, 160x120)
EVENT_KEYS = {"stream", "event", "target", "frame", "time", "box", "score", "presence"}
LOST_GAUGE = 'siammask_lost_targets{stream="lt"}'
REACQUIRED = 'siammask_reacquired_targets_total{stream="lt"}'
pytestmark = pytest.mark.slow  # serve's processes


def follows_its_frame(event: dict, seen: list[dict]) -> dict:
    """The message just before `event` (its frame's result, as every subscriber sees it); its record."""
    before = seen[seen.index(event) - 1]
    assert before["stream"] == event["stream"] and before["frame"] == event["frame"], before
    assert before["capture_ts"] == event["time"]
    (record,) = [t for t in before["targets"] if t["target"] == event["target"]]
    return record


def lt_targets(serve: Serve) -> list[dict]:
    reply = serve.ctl({"cmd": "list"})
    assert reply["ok"], reply
    return [s for s in reply["streams"] if s["id"] == "lt"][0]["targets"]


def test_lost_and_found_reach_a_subscriber_ctl_list_and_the_metrics(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for index, image in enumerate(disappearing_clip()):
        assert cv2.imwrite(str(folder / f"{index:05d}.png"), image)
    config = {"streams": [{"id": "lt", "source": str(folder), "fps": 5.0, "boxes": [BOX]}],
              "model": {"threads": 1},  # no weights: the shipped default ones
              "publish": ANY_PORT, "metrics_port": free_port(), "log_interval_s": 0}
    serve = Serve(tmp_path, config)
    sub = Subscriber(serve.publish, events=True)  # in place long before frame 0: the model loads first
    try:
        seen = sub.wait_for(lambda m: m.get("event") == "lost", START_TIMEOUT_S, f"a lost event; log:\n{serve.log()}")
        assert serve.ctl({"cmd": "pause", "stream": "lt"})["ok"]  # see the module's docstring
        lost = seen[-1]
        assert seen[0]["frame"] < GONE.start, "the subscriber came too late to see the target tracked"
        assert set(lost) == EVENT_KEYS and (lost["stream"], lost["target"]) == ("lt", 0) and lost["frame"] in GONE
        record = follows_its_frame(lost, seen)
        assert record["lost"] and not record["found"] and record["mask"] is None
        assert lost["box"] == record["box"] and lost["presence"] == record["presence"] < 0.3  # lost_threshold
        (target,) = lt_targets(serve)
        assert target["state"] == "lost" and target["frame"] >= lost["frame"] and target["box"] == lost["box"]
        metrics = serve.metrics()
        assert metrics[LOST_GAUGE] == 1 and metrics.get(REACQUIRED, 0) == 0

        assert serve.ctl({"cmd": "resume", "stream": "lt"})["ok"]
        seen += sub.wait_for(lambda m: m.get("event") == "found", START_TIMEOUT_S, f"a found event; log:\n{serve.log()}")
        found = seen[-1]
        assert set(found) == EVENT_KEYS and found["target"] == 0 and GONE.stop <= found["frame"] < FOUND_BY
        record = follows_its_frame(found, seen)
        assert record["found"] and not record["lost"] and record["mask"] is not None
        assert found["box"] == record["box"] and found["presence"] == record["presence"] >= 0.6  # found_threshold
        assert [m["event"] for m in seen if "event" in m] == ["lost", "found"]
        assert serve.ctl({"cmd": "pause", "stream": "lt"})["ok"]
        (target,) = lt_targets(serve)
        assert target["state"] == "tracking" and target["frame"] >= found["frame"]
        assert 0.0 <= target["presence"] <= 1.0 and 0.0 <= target["score"] <= 1.0
        metrics = serve.metrics()
        assert metrics[LOST_GAUGE] == 0 and metrics[REACQUIRED] == 1
        assert f"stream 'lt': target 0 lost on frame {lost['frame']}" in serve.log()
        assert f"stream 'lt': target 0 found on frame {found['frame']}" in serve.log()

        assert serve.ctl({"cmd": "remove_stream", "stream": "lt"})["ok"]
        sub.wait_for(lambda m: m == {"stream": "lt", "end": True}, 30, "the stream's end")
        assert not [name for name in serve.metrics() if 'stream="lt"' in name]
        assert serve.stop() == 0
    finally:
        sub.close()
        if serve.proc.poll() is None:
            serve.kill()
