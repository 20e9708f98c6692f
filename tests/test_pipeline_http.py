"""The metrics and preview HTTP servers against clients that hold connections open or leave early
(issue 23): real servers on real sockets, in this process, so their threads can be counted."""
from __future__ import annotations

import socket
import struct
import threading
import time
import urllib.request

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Counter

from siammask.pipeline import httpserve
from siammask.pipeline.httpserve import serve_metrics
from siammask.pipeline.preview import PreviewServer, encode_jpeg

from pipeline_support import eventually, free_port

HELD = 100  # half-open connections: before, each held a thread for good


@pytest.fixture
def preview():
    server = PreviewServer(free_port())
    server.add_stream("a")
    yield server
    server.close()


@pytest.fixture
def metrics():
    reg = CollectorRegistry()
    Counter("siammask_test", "a counter", registry=reg).inc(3)
    server = serve_metrics(free_port(), reg)
    yield server
    server.shutdown()
    server.server_close()


def _port(server) -> int:
    http = getattr(server, "_http", server)
    return http.server_address[1]


def _get(port: int, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
        return response.read()


@pytest.mark.parametrize("which, path, expect", [("preview", "/", b"<h2>a</h2>"),
                                                 ("metrics", "/metrics", b"siammask_test_total 3.0")])
def test_connections_are_bounded_and_idle_ones_closed(request, monkeypatch, which, path, expect):
    monkeypatch.setattr(httpserve, "IDLE_TIMEOUT_S", 8.0)
    server = request.getfixturevalue(which)
    port = _port(server)
    before = threading.active_count()
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(HELD)]  # send nothing
    try:
        peak, end = 0, time.monotonic() + 3.0  # well inside the idle timeout: every thread is still there
        while time.monotonic() < end:
            peak = max(peak, threading.active_count() - before)
            time.sleep(0.01)
        assert peak == httpserve.MAX_CONNECTIONS  # before: one per connection
        # each held connection is answered or closed: over the cap at once, the rest when idle
        for sock in held:
            sock.settimeout(60)
            assert sock.recv(1024) == b""
        eventually(lambda: threading.active_count() <= before, 60.0, "handler threads left after the idle timeout",
                   interval_s=0.05)
    finally:
        for sock in held:
            sock.close()
    assert expect in _get(port, path)


def test_a_viewer_that_leaves_early_is_no_traceback(preview, capfd):
    """Before: a ConnectionResetError traceback on stderr for each one."""
    port = _port(preview)
    stop = threading.Event()

    def feed() -> None:
        rng = np.random.default_rng(0)
        while not stop.is_set():
            preview.update("a", encode_jpeg(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)))
            time.sleep(0.01)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        for path in ("/", "/stream/a.mjpg") * 5:
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert sock.recv(16).startswith(b"HTTP/1.0 200")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset, not FIN
            sock.close()
        assert b"<h2>a</h2>" in _get(port, "/")  # still serving
        eventually(lambda: not preview.watched, 60.0, "viewers that left are still counted", interval_s=0.05)
    finally:
        stop.set()
        feeder.join(10)
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Error" not in err, err
