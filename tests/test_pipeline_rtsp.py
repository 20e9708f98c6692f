"""A real RTSP server (GStreamer's gst-rtsp-server, tests/rtsp_server.py) on 127.0.0.1: serve tracks
its stream through OpenCV's FFmpeg reader, and when the server goes away and comes back the capture
reconnects and the results resume with the same target."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from siammask.synthetic import make_sequence, write_image_folder

from pipeline_support import ANY_PORT, START_TIMEOUT_S, Serve, Subscriber, free_port, lite_checkpoint, terminate

SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, where python3-gi and the GStreamer bindings live
SERVER = Path(__file__).resolve().parent / "rtsp_server.py"
BOX = [25.0, 19.0, 26.0, 19.0]


class RtspServer:
    def __init__(self, frames: Path, port: int) -> None:
        self.proc = subprocess.Popen([SYSTEM_PYTHON, str(SERVER), "--port", str(port), "--frames", str(frames)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()  # READY, or nothing when it failed
        if line.strip() != "READY":
            self.stop()
            pytest.skip(f"the GStreamer RTSP server did not start: {self.proc.stderr.read().strip()[-300:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            terminate(self.proc, 20)


@pytest.fixture
def frames(tmp_path) -> Path:
    if not Path(SYSTEM_PYTHON).exists():
        pytest.skip(f"{SYSTEM_PYTHON} not found (Debian's python3-gi runs the RTSP server)")
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0')"],
                           capture_output=True, text=True)
    if probe.returncode:
        pytest.skip("gst-rtsp-server's Python bindings are missing (.ci/run installs gir1.2-gst-rtsp-server-1.0)")
    return write_image_folder(make_sequence(num_frames=40, size=(160, 120), seed=3), tmp_path / "frames")


@pytest.mark.slow
def test_rtsp_stream_is_tracked_and_reconnected(tmp_path, frames):
    port = free_port()
    server = RtspServer(frames, port)
    serve = Serve(tmp_path, {
        "streams": [{"id": "door", "source": f"rtsp://127.0.0.1:{port}/test", "boxes": [BOX]}],
        "model": {"weights": str(lite_checkpoint(tmp_path / "lite.pth")), "threads": 1},
        "publish": ANY_PORT,
        "metrics_port": 0, "log_interval_s": 0, "open_timeout_s": 3.0, "read_timeout_s": 3.0})
    sub = Subscriber(serve.publish)
    try:
        first = sub.wait_for(lambda m: m["frame"] >= 5, START_TIMEOUT_S, "results from the RTSP stream")
        assert all(m["stream"] == "door" and [t["target"] for t in m["targets"]] == [0] for m in first)
        assert first[0]["width"] == 160 and first[0]["height"] == 120

        server.stop()
        while sub.recv(5) is not None:  # what was on its way
            pass
        last = max(m["frame"] for m in first)
        server = RtspServer(frames, port)
        resumed = sub.wait_for(lambda m: m["frame"] > last + 5, 90, f"results after the server came back; "
                                                                    f"log:\n{serve.log()}")
        assert [t["target"] for t in resumed[-1]["targets"]] == [0]
        assert "reconnecting" in serve.log() or "stalled" in serve.log()
    finally:
        sub.close()
        server.stop()
        code = serve.stop()
    assert code == 0
    assert serve.leftovers() == []
