"""The capture stall watchdog, on a real hang: opening a named pipe that nobody writes into waits
for a writer, where the source's open/read timeouts do not reach. The watchdog kills and restarts
the capture process, and the stream is reported stalled (ctl list, /metrics) until frames flow;
once a program writes a video into the pipe, the stream is tracked and running again."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from siammask.synthetic import make_sequence, write_video

from pipeline_support import ANY_PORT, START_TIMEOUT_S, Serve, Subscriber, eventually, free_port, lite_checkpoint

BOX = [25.0, 19.0, 26.0, 19.0]


class PipeWriter(threading.Thread):
    """Writes `video`'s bytes into the pipe each time a reader opens it (opening a pipe for writing
    waits for a reader), as a feeder script running ffmpeg into a named pipe in a loop would. On a
    loaded box the capture sometimes ended its first reading early (the pipe 'stopped', seen in
    full CI runs and under a CPU burner) and what the writer had left was lost: written once, the
    stream never came back."""

    def __init__(self, pipe: Path, video: Path) -> None:
        super().__init__(daemon=True)
        self.pipe, self.data, self.written, self.done = pipe, video.read_bytes(), False, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                with open(self.pipe, "wb") as out:
                    out.write(self.data)
                self.written = True
            except BrokenPipeError:
                pass  # the reader went away: write again for the next one

    def release(self) -> None:
        """Stop writing; unblock a writer still waiting for a reader (test clean-up)."""
        self.done.set()
        if self.is_alive():
            os.close(os.open(self.pipe, os.O_RDONLY | os.O_NONBLOCK))


@pytest.mark.slow
def test_stalled_capture_is_restarted_and_the_stream_then_tracked(tmp_path):
    pipe = tmp_path / "feed.pipe"
    os.mkfifo(pipe)
    video = write_video(make_sequence(num_frames=30, size=(160, 120), seed=4), tmp_path / "feed.avi")
    serve = Serve(tmp_path, {
        "streams": [{"id": "pipe", "source": str(pipe), "boxes": [BOX]}],
        "model": {"weights": str(lite_checkpoint(tmp_path / "lite.pth")), "threads": 1},
        "publish": ANY_PORT,
        # A read timeout of 1 s let a loaded box end the stream: the writer (a thread of this test
        # process) did not refill the pipe within 1 s, the capture stopped reading, and what was left
        # of the video was lost with the writer's broken pipe (seen twice in full CI runs).
        "metrics_port": free_port(), "log_interval_s": 0, "open_timeout_s": 1.0, "read_timeout_s": 10.0})
    sub = Subscriber(serve.publish)
    writer = PipeWriter(pipe, video)
    try:
        # the longer of the timeouts (10 s) + the watchdog's 5 s margin, plus the process start
        eventually(lambda: "capture pipe stalled; restarting" in serve.log(), START_TIMEOUT_S,
                   "the stalled capture's restart in the log", serve)
        assert sub.recv(0.5) is None  # nothing was read, so nothing was published
        metrics = serve.metrics()
        assert metrics['siammask_restarts_total{stage="capture"}'] >= 1
        assert metrics['siammask_stream_stalled{stream="pipe"}'] == 1.0
        assert [s["state"] for s in serve.ctl({"cmd": "list"})["streams"]] == ["stalled"]
        writer.start()
        got = sub.wait_for(lambda m: m["frame"] >= 10, START_TIMEOUT_S, f"results from the pipe; log:\n{serve.log()}")
        eventually(lambda: [s["state"] for s in serve.ctl({"cmd": "list"})["streams"]] == ["running"], START_TIMEOUT_S,
                   "the stream running again in ctl list", serve)
        assert serve.metrics()['siammask_stream_stalled{stream="pipe"}'] == 0.0
        assert all(m["stream"] == "pipe" and [t["target"] for t in m["targets"]] == [0] for m in got)
        assert (got[0]["width"], got[0]["height"]) == (160, 120)
        assert writer.written
    finally:
        sub.close()
        writer.release()
        code = serve.stop()
    assert code == 0
    assert serve.leftovers() == []
