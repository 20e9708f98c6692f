"""The inference stage in-process: a real Tracker (lite, seeded random weights) and real ZeroMQ
sockets over inproc://, driven one turn at a time with `InferenceStage.step`; the test plays the
captures, the supervisor and the sink on the other ends. No processes, no sleeps."""
from __future__ import annotations

import numpy as np
import pytest
import zmq
from prometheus_client import REGISTRY

from siammask.pipeline.inference import InferenceStage, StageSpec
from siammask.pipeline.messages import (AddStream, AddTarget, Boxes, FrameHeader, Ready, RemoveTarget, Reply, Result,
                                        SetPaused, StreamEnd, TargetAdded, drain, send)
from siammask.pipeline.transport import LinkSpec, ZmqStageLink
from siammask.synthetic import make_sequence

BOX = (25.0, 19.0, 26.0, 19.0)  # the synthetic object on frame 0 (seed 3, 160x120)
GENERATION = 3


@pytest.fixture(scope="module")
def clip():
    return make_sequence(num_frames=8, size=(160, 120), seed=3)


class Harness:
    """The stage's surroundings on inproc:// sockets of one context: a capture per stream (PUSH,
    bound), the supervisor's command pipe and event queue, and the sink's result queue."""

    def __init__(self, tracker, streams: tuple[AddStream, ...], send_frames: bool = False) -> None:
        self.ctx = zmq.Context()
        self.events = self._bound(zmq.PULL, "inproc://events")
        self.results = self._bound(zmq.PULL, "inproc://results")
        self.captures = {s.stream: self._bound(zmq.PUSH, s.endpoint) for s in streams}
        link = ZmqStageLink(LinkSpec("inproc://commands", "inproc://events", "inproc://results", queue_size=8,
                                     results_hwm=16, curve=None), self.ctx)
        self.stopped = False
        self.stage = InferenceStage(tracker, link, StageSpec(streams, (), GENERATION, send_frames),
                                    lambda: self.stopped)
        self.commands = self.ctx.socket(zmq.PUSH)
        self.commands.connect("inproc://commands")

    def _bound(self, kind: int, endpoint: str) -> zmq.Socket:
        sock = self.ctx.socket(kind)
        sock.linger = 0
        sock.bind(endpoint)
        return sock

    def frame(self, stream: str, index: int, image: np.ndarray, first: bool = False, capture_drops: int = 0) -> None:
        header = FrameHeader(stream, index, first, 25.0, 0, {"read": 1.0, "sent": 2.0}, capture_drops)
        assert send(self.captures[stream], header, image, block=True)

    def command(self, cmd) -> None:
        assert send(self.commands, cmd, block=True)

    def turn(self) -> tuple[list, list]:
        """One turn of the stage; what it sent the sink and the supervisor."""
        self.stage.step(1000)
        return drain(self.results), drain(self.events)

    def close(self) -> None:
        self.stage.link.close()
        for sock in (self.events, self.results, self.commands, *self.captures.values()):
            sock.close()
        self.ctx.term()


def stream(name: str = "a", pending: tuple = ((0, BOX),), paused: bool = False) -> AddStream:
    return AddStream(stream=name, endpoint=f"inproc://frames-{name}", paused=paused, pending=pending, slot=0,
                     registration=1)


@pytest.fixture
def harness(lite_tracker):
    made = []

    def make(*streams: AddStream, send_frames: bool = False) -> Harness:
        made.append(Harness(lite_tracker, streams or (stream(),), send_frames))
        return made[-1]

    yield make
    for h in made:
        h.close()


def test_first_frame_starts_the_targets_and_the_newest_frame_is_tracked(harness, clip, lite_tracker):
    h = harness()
    h.frame("a", 0, clip[0].image, first=True)
    h.frame("a", 1, clip[1].image)
    h.frame("a", 3, clip[3].image, capture_drops=1)
    results, events = h.turn()
    assert [type(r) for r, _ in results] == [Result, Result]
    start, tracked = results[0][0], results[1][0]
    assert start.frame == 0 and start.dropped == {"capture": 0, "inference": 0, "sink": 0}
    assert start.targets == ({"frame": 0, "box": BOX, "polygon": start.targets[0]["polygon"], "score": 1.0,
                              "lost": False, "mask": None, "target": 0},)
    # frame 1 skipped, frame 2 lost by the capture: both reported with frame 3
    assert tracked.frame == 3 and tracked.dropped == {"capture": 1, "inference": 1, "sink": 0}
    assert (tracked.width, tracked.height, tracked.generation) == (160, 120, GENERATION)
    _, want = lite_tracker.step(clip[3].image, lite_tracker.init(clip[0].image, [BOX]))
    np.testing.assert_allclose(tracked.targets[0]["box"], want[0].box, atol=1e-3)
    assert tracked.targets[0]["score"] == pytest.approx(want[0].score, abs=1e-4)
    assert set(tracked.t) >= {"read", "sent", "received", "start", "pre", "infer", "post"}
    added = [(e, px) for e, px in events if isinstance(e, TargetAdded)]
    assert len(added) == 1 and added[0][0] == TargetAdded(stream="a", target=0, box=BOX, frame=0,
                                                          generation=GENERATION)
    np.testing.assert_array_equal(added[0][1], clip[0].image)  # the init frame, for a restarted process
    boxes = [e for e, _ in events if isinstance(e, Boxes)]
    assert [b.frame for b in boxes] == [0, 3] and boxes[1].boxes == ((0, tuple(want[0].box)),)


def test_added_target_starts_on_the_newest_frame_and_is_answered(harness, clip):
    h = harness(stream(pending=()))
    h.command(AddTarget(stream="a", target=1, box=BOX, req=7, generation=GENERATION))
    _, events = h.turn()
    assert events[0][0] == Reply(req=7, error="stream 'a' has not delivered a frame yet; try again when it is live",
                                 generation=GENERATION)
    h.frame("a", 0, clip[0].image, first=True)
    results, _ = h.turn()
    assert results[0][0].targets == ()  # no target yet: the frame is still published
    h.command(AddTarget(stream="a", target=1, box=BOX, req=8, generation=GENERATION))
    h.command(AddTarget(stream="a", target=2, box=(500.0, 500.0, 10.0, 10.0), req=9, generation=GENERATION))
    _, events = h.turn()
    (ok, pixels), (refused, _) = events
    assert ok == Reply(req=8, stream="a", target=1, box=BOX, frame=0, generation=GENERATION) and ok.ok
    np.testing.assert_array_equal(pixels, clip[0].image)
    assert not refused.ok and "lies outside the 160x120 frame" in refused.error
    h.frame("a", 1, clip[1].image)
    results, _ = h.turn()
    assert [t["target"] for t in results[0][0].targets] == [1]
    h.command(RemoveTarget(stream="a", target=1, generation=GENERATION))
    h.frame("a", 2, clip[2].image)
    results, _ = h.turn()
    assert results[0][0].targets == ()


def test_pause_is_confirmed_and_paused_frames_are_reported_after_resume(harness, clip):
    h = harness()
    h.frame("a", 0, clip[0].image, first=True)
    h.turn()
    h.command(SetPaused(stream="a", paused=True, req=1, generation=GENERATION))
    h.frame("a", 1, clip[1].image)  # arrives with the pause: not processed
    results, events = h.turn()
    assert results == [] and [e for e, _ in events] == [Reply(req=1, stream="a", generation=GENERATION)]
    h.frame("a", 3, clip[3].image, capture_drops=1)
    assert h.turn()[0] == []
    h.command(SetPaused(stream="a", paused=False, req=2, generation=GENERATION))
    h.frame("a", 4, clip[4].image)
    results, events = h.turn()
    assert [e.req for e, _ in events if isinstance(e, Reply)] == [2]
    resumed = results[0][0]
    assert resumed.frame == 4 and resumed.paused_frames == 2 and resumed.dropped["capture"] == 1
    assert 4 - 0 - 1 == resumed.paused_frames + sum(resumed.dropped.values())  # the gap rule


def test_commands_of_another_generation_or_for_unknown_streams(harness, clip):
    h = harness()
    h.command(SetPaused(stream="a", paused=True, req=1, generation=GENERATION - 1))  # for a replaced process
    h.command(SetPaused(stream="zz", paused=True, req=2, generation=GENERATION))
    h.frame("a", 0, clip[0].image, first=True)
    results, events = h.turn()
    assert [e for e, _ in events if isinstance(e, Reply)] == [
        Reply(req=2, error="stream 'zz' is not running", generation=GENERATION)]
    assert [r.frame for r, _ in results] == [0]  # not paused


def test_two_streams_in_one_batch_and_the_pixels_go_to_the_sink(harness, clip):
    other = make_sequence(num_frames=2, size=(200, 150), seed=5)
    h = harness(stream("a"), stream("b", pending=((0, other[0].box),)), send_frames=True)
    h.frame("a", 0, clip[0].image, first=True)
    h.frame("b", 0, other[0].image, first=True)
    h.turn()
    h.frame("a", 1, clip[1].image)
    h.frame("b", 1, other[1].image)
    results, _ = h.turn()
    assert sorted((r.stream, r.width, r.height) for r, _ in results) == [("a", 160, 120), ("b", 200, 150)]
    for r, pixels in results:
        np.testing.assert_array_equal(pixels, (clip if r.stream == "a" else other)[1].image)


def test_run_announces_ready_finishes_waiting_frames_and_ends_streams(harness, clip):
    h = harness()
    h.frame("a", 0, clip[0].image, first=True)
    assert send(h.captures["a"], StreamEnd("a"), block=True)
    h.stopped = True  # stop at once: run still processes what the captures sent
    h.stage.run()
    events, results = drain(h.events), drain(h.results)
    assert events[0][0] == Ready(generation=GENERATION)
    assert [type(r) for r, _ in results] == [Result, StreamEnd] and results[0][0].frame == 0


def rejected(stream: str, reason: str) -> float:
    return REGISTRY.get_sample_value("siammask_rejected_messages_total", {"stream": stream, "reason": reason}) or 0.0


def test_a_stream_speaks_only_for_itself_and_garbage_is_dropped(harness, clip):
    """What arrives on b's socket naming 'a' (a frame, an end) or not decoding at all is dropped
    and counted against b; a goes on as if b had sent nothing, and the stage keeps turning."""
    h = harness(stream("a"), stream("b", pending=()))
    before = {r: rejected("b", r) for r in ("other_stream", "undecodable")}
    h.frame("a", 0, clip[0].image, first=True)
    spoof = FrameHeader("a", 10**9, False, 25.0, 0, {"read": 1.0, "sent": 2.0}, 0)
    assert send(h.captures["b"], spoof, np.zeros_like(clip[1].image), block=True)
    assert send(h.captures["b"], StreamEnd("a"), block=True)
    h.captures["b"].send_multipart([b"\xff garbage"])
    h.captures["b"].send_multipart([b'{"type": "FrameHeader", "stream": "b"}', b"xyz"])
    results, _ = h.turn()
    assert [(type(r).__name__, r.stream, getattr(r, "frame", None)) for r, _ in results] == [("Result", "a", 0)]
    assert rejected("b", "other_stream") - before["other_stream"] == 2
    assert rejected("b", "undecodable") - before["undecodable"] == 2
    h.frame("a", 1, clip[1].image)
    h.frame("b", 0, clip[0].image, first=True)
    results, _ = h.turn()
    assert sorted((r.stream, r.frame) for r, _ in results) == [("a", 1), ("b", 0)]
