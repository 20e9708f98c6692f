"""The child table (pipeline/children.py) with real processes that exit with the codes stages end
with: what each exit means (a restart after its backoff with a `restarted` event and a new
generation, a stream that ended, a FATAL stage that stops serve) and the stop of every child.
Seconds, no model: the serve tests run the same table with real stages."""
from __future__ import annotations

import json
import multiprocessing
import os
import time

from siammask.pipeline.children import Child, Children
from siammask.pipeline.console.hub import EventLog
from siammask.pipeline.exits import ENDED, FATAL, STALLED
from siammask.pipeline.metrics import RESTARTS, StageMetrics, mirror_key

from pipeline_support import eventually

MP = multiprocessing.get_context("spawn")


def exit_with(code: int) -> None:
    os._exit(code)


def run_until_stopped() -> None:
    time.sleep(600)  # SIGTERM ends it


def table(tmp_path) -> tuple[Children, EventLog, list]:
    calls: list = []
    events = EventLog()
    children = Children(StageMetrics(str(tmp_path), lambda: ()), events,
                        ended=lambda child, code: calls.append(("ended", child.name, code)),
                        down=lambda child, stalled: calls.append(("down", child.name)) or " with nothing")
    return children, events, calls


def spawn(target, *args):
    def start(generation: int) -> multiprocessing.Process:
        process = MP.Process(target=target, args=args, daemon=True)
        process.start()
        return process
    return start


def test_a_stage_that_dies_is_restarted_after_its_backoff_with_an_event(tmp_path):
    children, events, calls = table(tmp_path)
    before = RESTARTS.labels("inference")._value.get()
    child = children.add(Child("inference", "inference", spawn(exit_with, 1)))
    first = child.generation
    eventually(lambda: children.watch() or child.process is None, 60, "the exit seen")
    assert calls == [("down", "inference")] and child.restart_at > time.monotonic() - 1
    [event] = [e for e in events.since(0) if e["event"] == "restarted"]
    assert (event["stage"], event["why"], event["wait_s"]) == ("inference", "exited with status 1", 0.5)
    assert RESTARTS.labels("inference")._value.get() == before + 1
    eventually(lambda: children.watch() or child.process is not None, 60, "the restart")
    assert child.generation != first and children.by_generation(child.generation) is child
    assert children.by_generation(first) is None  # events of the dead process are ignored
    children.stop_all()


def test_a_capture_that_ends_or_stalls(tmp_path):
    children, events, calls = table(tmp_path)
    children.add(Child("capture a", "capture", spawn(exit_with, ENDED)))
    stalled = children.add(Child("capture b", "capture", spawn(exit_with, STALLED)))
    eventually(lambda: children.watch() or stalled.process is None and "capture a" not in children.table, 60,
               "both exits seen")
    assert ("ended", "capture a", ENDED) in calls
    restarts = [(e["stage"], e["why"]) for e in events.since(0) if e["event"] == "restarted"]
    assert restarts and set(restarts) == {("capture b", "stalled")}  # it may have stalled again since
    children.stop_all()


def test_a_fatal_stage_stops_serve_and_is_not_restarted(tmp_path):
    children, events, calls = table(tmp_path)
    child = children.add(Child("inference 0", "inference", spawn(exit_with, FATAL)))
    eventually(lambda: children.watch() or children.fatal, 60, "the FATAL exit seen")
    assert child.process is None and calls == []
    time.sleep(0.6)  # longer than the first backoff
    children.watch()
    assert child.process is None and not [e for e in events.since(0) if e["event"] == "restarted"]


def test_stop_all_ends_every_child_and_remove_ends_one(tmp_path):
    children, _, _ = table(tmp_path)
    processes = [children.add(Child(name, stage, spawn(run_until_stopped))).process
                 for name, stage in (("sink", "sink"), ("inference", "inference"), ("capture a", "capture"),
                                     ("capture b", "capture"))]
    children.remove("capture b")
    assert processes[3].exitcode is not None and "capture b" not in children.table
    children.stop_all()
    assert all(p.exitcode is not None for p in processes)
    assert children.down_now() == ["sink", "inference", "capture a"]


def counter_file(path, value: float) -> None:
    """A metrics file as prometheus-client writes one: the drops of stream 'a' at inference."""
    from prometheus_client.mmap_dict import MmapedDict

    key = json.dumps(["siammask_dropped_frames", "siammask_dropped_frames_total",
                      {"stream": "a", "stage": "inference"}, "drops"])
    counters = MmapedDict(str(path))
    counters.write_value(key, value, 0.0)
    counters.close()


def test_a_mirrored_child_that_dies_folds_its_snapshots_not_a_local_process_of_its_pid(tmp_path):
    """A cluster worker's pid is another node's: a local process of the same pid keeps its files."""
    children = Children(StageMetrics(str(tmp_path), lambda: ("a",)), EventLog(), ended=lambda child, code: None,
                        down=lambda child, stalled: "")
    child = children.add(Child("inference 0", "inference", spawn(exit_with, 1), mirrored=True))
    pid = child.process.pid
    local, sent = tmp_path / f"counter_{pid}.db", tmp_path / f"counter_{mirror_key(pid, child.generation)}.db"
    counter_file(local, 5.0)
    counter_file(sent, 7.0)
    eventually(lambda: children.watch() or child.process is None, 60, "the exit seen")
    assert local.exists() and not sent.exists()
    drops = {s.value for m in children.metrics.registry.collect() for s in m.samples
             if s.name == "siammask_dropped_frames_total"}
    assert drops == {12.0}  # the local process's 5 still its own, the worker's 7 in the archive
    children.stop_all()
