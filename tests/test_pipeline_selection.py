"""Frame selection and drop accounting of the inference stage (pipeline/selection.py), as a pure
function: no processes, sockets or model, milliseconds per test."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from siammask.pipeline.messages import FrameHeader, StreamEnd
from siammask.pipeline.selection import Gate, Pick, select

RUNNING, PENDING, PAUSED = Gate(False, False), Gate(False, True), Gate(True, False)


def frame(stream: str, index: int, capture_drops: int = 0, first: bool = False) -> FrameHeader:
    return FrameHeader(stream, index, first, 25.0, 0, {"read": 0.0, "sent": 0.0}, capture_drops)


def test_newest_frame_per_stream_carries_the_older_ones_and_capture_losses():
    received = [frame("a", 10), frame("b", 3, capture_drops=2), frame("a", 12, capture_drops=1), frame("a", 13),
                frame("b", 4)]
    chosen = select(received, {"a": RUNNING, "b": RUNNING})
    assert chosen.firsts == ()
    assert chosen.newest == (Pick("a", 3, skipped=2, capture_drops=1), Pick("b", 4, skipped=1, capture_drops=2))
    assert (chosen.dropped("a"), chosen.dropped("b")) == (2, 1)
    assert chosen.waiting == {"a": 3, "b": 2} and chosen.latest == {"a": 3, "b": 4}
    assert chosen.paused == {} and chosen.ended == ()


def test_a_first_frame_waiting_for_initial_boxes_is_processed_before_the_newest():
    received = [frame("a", 5, capture_drops=4), frame("a", 0, first=True), frame("a", 1), frame("a", 4, capture_drops=2)]
    chosen = select(received, {"a": PENDING})
    # The first frame takes the frames and losses up to it; the newest one the rest.
    assert chosen.firsts == (Pick("a", 1, skipped=1, capture_drops=4),)
    assert chosen.newest == (Pick("a", 3, skipped=1, capture_drops=2),)
    assert chosen.dropped("a") == 2


def test_first_frame_rules():
    only_first = [frame("a", 0, first=True)]
    assert select(only_first, {"a": PENDING}).newest == (Pick("a", 0, 0, 0),)  # the newest is the first
    assert select(only_first, {"a": PENDING}).firsts == ()
    without_boxes = [frame("a", 0, first=True), frame("a", 1)]
    assert select(without_boxes, {"a": RUNNING}).firsts == ()  # no boxes wait: nothing to start on it
    restarted = [frame("a", 0, first=True), frame("a", 7, first=True), frame("a", 8)]  # a new capture's first
    assert select(restarted, {"a": PENDING}).firsts == (Pick("a", 1, 1, 0),)
    no_first = [frame("a", 3), frame("a", 4)]
    assert select(no_first, {"a": PENDING}).firsts == ()


def test_paused_streams_count_paused_frames_and_capture_losses_and_process_nothing():
    received = [frame("a", 1, capture_drops=3), frame("b", 1), frame("a", 2)]
    chosen = select(received, {"a": PAUSED, "b": RUNNING})
    assert chosen.paused == {"a": (2, 3)}
    assert [p.stream for p in chosen.newest] == ["b"] and chosen.dropped("a") == 0
    assert chosen.latest["a"] == 2  # a target added while paused starts on the newest frame


def test_removed_streams_are_ignored_and_an_end_after_the_last_frame_ends_a_stream():
    received = [frame("gone", 1), frame("a", 1), StreamEnd("a"), StreamEnd("b"), StreamEnd("gone")]
    chosen = select(received, {"a": RUNNING, "b": RUNNING})
    assert chosen.ended == ("a", "b")
    assert chosen.newest == (Pick("a", 1, 0, 0),) and "gone" not in chosen.waiting and "b" not in chosen.waiting
    assert select([StreamEnd("a"), frame("a", 0)], {"a": RUNNING}).ended == ()  # a frame after it: not the end


turns = st.lists(st.tuples(st.lists(st.integers(0, 3), min_size=0, max_size=6),  # capture losses before each frame
                           st.booleans(),                                         # the stream is paused this turn
                           st.booleans()), min_size=1, max_size=12)               # initial boxes wait


@settings(max_examples=200, deadline=None)
@given(turns)
def test_every_gap_between_processed_frames_is_what_their_picks_report(plan):
    """Over any sequence of turns, the frame-id gap between two processed frames is exactly the
    skipped frames, capture losses and paused frames reported with the later one: the invariant a
    subscriber checks (README: frame - previous - 1 == dropped + paused_frames)."""
    next_id, first = 0, True
    processed: list[tuple[int, int]] = []  # (frame id, frames it reports as lost)
    unreported = 0                         # paused frames and their capture losses, reported with the next pick
    for losses, paused, pending in plan:
        received = []
        for lost in losses:
            next_id += lost
            received.append(frame("a", next_id, capture_drops=lost, first=first))
            next_id, first = next_id + 1, False
        chosen = select(received, {"a": Gate(paused, pending)})
        if "a" in chosen.paused:
            count, lost = chosen.paused["a"]
            unreported += count + lost
        for pick in (*chosen.firsts, *chosen.newest):
            processed.append((received[pick.index].frame, pick.skipped + pick.capture_drops + unreported))
            unreported = 0
        if received and not paused:  # the newest frame is always processed
            assert [p.index for p in chosen.newest] == [len(received) - 1]
    previous = -1
    for frame_id, reported in processed:
        assert frame_id - previous - 1 == reported, processed
        previous = frame_id
