"""Which inference worker holds each stream (pipeline/workers.py), as pure code: no processes, no
Ray, milliseconds per test. The rule: a new stream goes to the least loaded worker with room (the
lowest number on a tie), to a new worker only when every one is full; a worker left empty retires
RETIRE_AFTER_S later unless it is the last one or takes a stream again first."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from siammask.pipeline.workers import RETIRE_AFTER_S, Holders, assign

loads = st.dictionaries(st.integers(0, 20), st.integers(0, 6), min_size=1, max_size=8)
limits = st.none() | st.integers(1, 5)


@given(loads, limits)
def test_a_new_stream_goes_to_the_least_loaded_worker_with_room(loads, max_streams):
    chosen = assign(loads, max_streams)
    room = {n: load for n, load in loads.items() if max_streams is None or load < max_streams}
    if not room:
        assert chosen is None
        return
    assert chosen in room and room[chosen] == min(room.values())
    assert chosen == min(n for n, load in room.items() if load == room[chosen])


def test_without_a_limit_one_worker_holds_every_stream():
    holders = Holders(["a", "b", "c"], None)
    assert holders.add("d") == (0, False)
    assert holders.streams == {0: {"a", "b", "c", "d"}}
    holders.remove("a", now=0.0)
    assert holders.retiring(now=1e9) == []  # the last worker never retires


def test_streams_at_start_are_dealt_round_robin_over_as_few_workers_as_fit():
    holders = Holders(["a", "b", "c", "d", "e"], 2)
    assert holders.streams == {0: {"a", "d"}, 1: {"b", "e"}, 2: {"c"}}
    assert holders.add("f") == (2, False)
    assert holders.add("g") == (3, True)


def test_a_worker_left_empty_retires_later_and_one_always_stays():
    holders = Holders([], 1)
    assert [holders.add("a"), holders.add("b"), holders.add("c")] == [(0, False), (1, True), (2, True)]
    holders.remove("a", now=0.0)
    holders.remove("b", now=1.0)
    assert holders.retiring(now=RETIRE_AFTER_S - 0.1) == []
    assert holders.add("d") == (0, False)  # an empty worker takes a new stream first, and stays
    assert holders.retiring(now=10.0) == [1]
    holders.remove("c", now=10.0)
    holders.remove("d", now=10.0)
    assert holders.retiring(now=20.0) == [2]  # both empty: the lower number stays
    assert holders.streams == {0: set()} and holders.add("e") == (0, False)


operations = st.lists(st.tuples(st.booleans(), st.integers(0, 5), st.booleans()), max_size=40)  # add?, which, wait?


@settings(max_examples=200)
@given(st.lists(st.sampled_from([f"s{i}" for i in range(6)]), unique=True, max_size=6), st.integers(1, 3), operations)
def test_every_stream_has_one_holder_and_no_worker_is_over_its_limit(first, max_streams, ops):
    holders, now, retired = Holders(first, max_streams), 0.0, set()
    for add, key, wait in ops:
        now += RETIRE_AFTER_S if wait else 0.01
        stream = f"s{key}"
        full = all(len(s) >= max_streams for s in holders.streams.values())
        if add and stream not in holders.holder:
            number, new = holders.add(stream)
            assert new == full and number not in retired  # a retired worker's number is never used again
        elif not add and stream in holders.holder:
            holders.remove(stream, now)
        due = holders.retiring(now)
        assert all(n not in holders.streams for n in due)
        retired.update(due)
        assert holders.streams  # at least one worker is always left
        assert {s: n for n, streams in holders.streams.items() for s in streams} == holders.holder
        assert all(len(s) <= max_streams for s in holders.streams.values())
