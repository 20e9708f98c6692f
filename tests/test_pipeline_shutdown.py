"""Ctrl-C on a local `siammask serve` of four streams: SIGINT to its whole process group, as a
terminal sends it. serve exits 0, and nothing it started is left once it has exited (the issue
allows 0.5 s; serve now waits for all of them): no stage, and not multiprocessing's resource
tracker, which outlived serve by 1-2 s before (this test failed on it). The time from the signal to
the exit is printed; its bound here is only a hang guard (the speed belongs in a benchmark)."""
from __future__ import annotations

import os
import signal
import time

import pytest

from pipeline_support import ANY_PORT, START_TIMEOUT_S, Serve, cmdline, collect, descendants, survivors

pytestmark = pytest.mark.slow

BOX = [25.0, 19.0, 26.0, 19.0]
LEFT_AFTER_S = 0.0  # serve waits for every process it started, the resource tracker included, before it exits


def test_sigint_stops_serve_and_leaves_no_process(tmp_path, synthetic_video, lite):
    streams = [{"id": f"s{i}", "source": str(synthetic_video), "loop": True, "fps": 10.0, "boxes": [BOX]}
               for i in range(4)]
    serve = Serve(tmp_path, {"streams": streams, "model": {"weights": str(lite), "threads": 1},
                             "publish": ANY_PORT, "metrics_port": 0, "log_interval_s": 0}, prefix=("setsid",))
    try:
        seen: set[str] = set()
        collect(serve, 0, START_TIMEOUT_S, until=lambda m: seen.add(m["stream"]) or len(seen) == 4)
        tree = descendants(serve.proc.pid)
        assert len(tree) >= 6  # the sink, the inference stage, four captures (and the resource tracker)
        assert any("resource_tracker" in cmd for cmd in map(cmdline, tree))
        start = time.monotonic()
        os.killpg(serve.proc.pid, signal.SIGINT)
        code, log = serve.ended(60)
        print(f"\nserve exited {time.monotonic() - start:.2f} s after SIGINT")
        left = survivors(tree, grace_s=LEFT_AFTER_S)
    finally:
        if serve.proc.poll() is None:
            serve.kill()
    assert code == 0, log
    assert left == [], left
    assert "Traceback" not in log
