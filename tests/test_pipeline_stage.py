"""The inference stage in-process: a real Tracker (lite, seeded random weights) and real ZeroMQ
sockets over inproc://, driven one turn at a time with `InferenceStage.step`; the test plays the
captures, the supervisor and the sink on the other ends. No processes, no sleeps."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import zmq
from prometheus_client import REGISTRY

from siammask.pipeline.inference import InferenceStage, StageSpec, TargetSeed
from siammask.pipeline.messages import (FOUND, LOST, AddStream, AddTarget, Boxes, FrameHeader, Ready, RemoveTarget,
                                        Reply, Result, SetPaused, StreamEnd, TargetAdded, TargetChanged, TargetFailed,
                                        drain, send)
from siammask.pipeline.security import Security
from siammask.pipeline.transport import CommandPipe, LinkSpec, ZmqStageLink
from siammask.synthetic import make_sequence

from pipeline_support import FOUND_BY, GONE, disappearing_clip

BOX = (25.0, 19.0, 26.0, 19.0)  # the synthetic object on frame 0 (seed 3, 160x120)
GENERATION = 3


@pytest.fixture(scope="module")
def default_tracker():
    """The shipped default weights: their presence estimate is the trained one."""
    from siammask.api import load_tracker
    return load_tracker()


@pytest.fixture(scope="module")
def clip():
    return make_sequence(num_frames=8, size=(160, 120), seed=3)


class Harness:
    """The stage's surroundings on inproc:// sockets of one context: a capture per stream (PUSH,
    bound), the supervisor's command pipe and event queue, and the sink's result queue."""

    def __init__(self, tracker, streams: tuple[AddStream, ...], send_frames: bool = False,
                 seeds: tuple[TargetSeed, ...] = ()) -> None:
        self.ctx = zmq.Context()
        self.events = self._bound(zmq.PULL, "inproc://events")
        self.results = self._bound(zmq.PULL, "inproc://results")
        self.captures = {s.stream: self._bound(zmq.PUSH, s.endpoint) for s in streams}
        self.commands = CommandPipe(Security(self.ctx, None), "inproc://commands")  # the supervisor's, bound
        link = ZmqStageLink(LinkSpec("inproc://commands", "inproc://events", "inproc://results", queue_size=8,
                                     results_hwm=16, curve=None), self.ctx)
        self.stopped = False
        self.stage = InferenceStage(tracker, link, StageSpec(streams, seeds, GENERATION, send_frames),
                                    lambda: self.stopped)

    def _bound(self, kind: int, endpoint: str) -> zmq.Socket:
        sock = self.ctx.socket(kind)
        sock.linger = 0
        sock.bind(endpoint)
        return sock

    def frame(self, stream: str, index: int, image: np.ndarray, first: bool = False, capture_drops: int = 0) -> None:
        header = FrameHeader(stream, index, first, 25.0, 0, {"read": 1.0, "sent": 2.0}, capture_drops)
        assert send(self.captures[stream], header, image, block=True)

    def command(self, cmd) -> None:
        self.commands.send(cmd)

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
                              "presence": 1.0, "lost": False, "found": False, "mask": None, "target": 0},)
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
    assert boxes[0].states == ((0, 1.0, 1.0, False),)
    assert boxes[1].states == ((0, pytest.approx(want[0].score, abs=1e-4), pytest.approx(want[0].presence, abs=1e-4),
                                want[0].lost),)


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


def test_a_new_process_restores_each_target_at_its_last_box(harness, clip, lite_tracker):
    """A restarted inference process gets every target as a seed: template from the init frame and
    box, tracking on from the last box the supervisor saw."""
    last = (40.0, 25.0, 28.0, 20.0)
    h = Harness(lite_tracker, (stream(pending=()),), seeds=(TargetSeed("a", 0, BOX, clip[0].image, last),))
    try:
        h.frame("a", 5, clip[5].image)
        results, _ = h.turn()
    finally:
        h.close()
    start = lite_tracker.init(clip[0].image, [BOX])[0]
    at_last = dataclasses.replace(start, pos=np.array([54.0, 35.0]), size=np.array([28.0, 20.0]))
    _, want = lite_tracker.step(clip[5].image, [at_last])
    (got,) = results[0][0].targets
    np.testing.assert_allclose(got["box"], want[0].box, atol=1e-3)
    assert got["score"] == pytest.approx(want[0].score, abs=1e-4)


def test_a_target_that_cannot_start_again_is_reported_and_dropped_and_the_others_run(default_tracker, clip):
    """A restarted process whose seed the tracker cannot start from (here a one-channel copy of the
    init frame: the tracker fails inside, not on validation) reports it once, as the stage starts,
    and runs the rest; the others carry their look-alikes at once (no frame kept for a first loss,
    where a failure would have taken the worker down on every restart)."""
    last = (40.0, 25.0, 28.0, 20.0)
    seeds = (TargetSeed("a", 0, BOX, clip[0].image[:, :, 0], last), TargetSeed("a", 1, BOX, clip[0].image, last))
    h = Harness(default_tracker, (stream(pending=()),), seeds=seeds)
    try:
        started = drain(h.events)
        h.frame("a", 5, clip[5].image)
        results, _ = h.turn()
        kept = h.stage.streams["a"].targets
    finally:
        h.close()
    failed = [e for e, _ in started if isinstance(e, TargetFailed)]
    assert [(e.stream, e.target, e.generation) for e in failed] == [("a", 0, GENERATION)]
    assert failed[0].error == f"the tracker could not start from box {list(BOX)}: TypeError"
    assert sorted(kept) == [1] and kept[1].memory.first_frame is None
    assert [t["target"] for t in results[0][0].targets] == [1]


def metric(name: str, stream: str) -> float:
    return REGISTRY.get_sample_value(name, {"stream": stream}) or 0.0


def test_lost_and_found_go_to_the_sink_after_their_frame_and_to_the_supervisor(default_tracker):
    """The shipped tracker on a target that is covered for GONE and comes back. Two targets on it:
    one is removed while lost, so the gauge of lost targets counts only what is tracked. Their
    look-alikes are searched as they start (not on the first loss, with every stream waiting)."""
    frames = disappearing_clip()
    h = Harness(default_tracker, (stream("lt", pending=((0, BOX), (1, BOX))),))
    reacquired = metric("siammask_reacquired_targets_total", "lt")
    sent, told, lost_gauge, records = [], [], {}, {}
    try:
        for index, image in enumerate(frames):
            h.frame("lt", index, image, first=index == 0)
            results, events = h.turn()
            sent += [msg for msg, _ in results]
            told += [e for e, _ in events if isinstance(e, TargetChanged)]
            records.update({(r.frame, t["target"]): t for r, _ in results if isinstance(r, Result) for t in r.targets})
            lost_gauge[index] = metric("siammask_lost_targets", "lt")
            if index == 0:  # look-alikes searched as the targets start: no frame kept for a later search
                eager = default_tracker.with_look_alikes(default_tracker.init(image, [BOX])[0]).memory
                for state in h.stage.streams["lt"].targets.values():
                    assert state.memory.first_frame is None
                    np.testing.assert_array_equal(state.memory.look_alikes, eager.look_alikes)
            if told and told[-1].change == LOST and told[-1].target == 1:
                h.command(RemoveTarget(stream="lt", target=1, generation=GENERATION))
    finally:
        h.close()
    lost, found = [e for e in told if e.change == LOST], [e for e in told if e.change == FOUND]
    assert [e.target for e in lost] == [0, 1] and lost[0].frame == lost[1].frame and lost[0].frame in GONE
    assert [e.target for e in found] == [0] and GONE.stop <= found[0].frame < FOUND_BY
    gone_at, back_at = lost[0].frame, found[0].frame
    # the sink gets the same messages, each right after its frame's result
    changes = [m for m in sent if isinstance(m, TargetChanged)]
    assert changes == told
    for event in changes:
        before = sent[sent.index(event) - 1]
        assert isinstance(before, (Result, TargetChanged)) and before.frame == event.frame
        assert event.stream == "lt" and event.time == 1.0 and event.generation == GENERATION  # frame read at 1.0
    # an event says what its frame's record says: lost at the last box where it was seen, found where it is
    assert lost[0].box == tuple(records[(gone_at - 1, 0)]["box"]) == tuple(records[(gone_at, 0)]["box"])
    assert records[(gone_at, 0)]["lost"] and not records[(gone_at - 1, 0)]["lost"]
    assert lost[0].presence == records[(gone_at, 0)]["presence"] < default_tracker.cfg.lost_threshold
    assert records[(back_at, 0)]["found"] and found[0].box == tuple(records[(back_at, 0)]["box"])
    assert found[0].presence == records[(back_at, 0)]["presence"] >= default_tracker.cfg.found_threshold
    assert [t for (f, t) in records if f > gone_at] and all(t == 0 for (f, t) in records if f > gone_at)
    # the gauge: both lost, then target 1 removed (the command is taken before the next frame), then found
    assert lost_gauge[gone_at - 1] == 0 and lost_gauge[gone_at] == 2
    assert all(lost_gauge[f] == 1 for f in range(gone_at + 1, back_at))
    assert all(lost_gauge[f] == 0 for f in range(back_at, len(frames)))
    assert metric("siammask_reacquired_targets_total", "lt") == reacquired + 1
