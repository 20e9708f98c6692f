"""Live preview over HTTP on 127.0.0.1: '/' lists the streams, '/stream/ID.mjpg' is each one as
MJPEG (multipart/x-mixed-replace), which any browser shows in an <img>. Frames are JPEG-encoded
only while someone watches."""
from __future__ import annotations

import html
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler

import cv2
import numpy as np

from .httpserve import BoundedHTTPServer

BOUNDARY = "siammaskframe"
JPEG_QUALITY = 80


def encode_jpeg(bgr: np.ndarray) -> bytes | None:
    """An annotated frame as the JPEG every viewer gets (the preview's and the console's); None if
    OpenCV cannot encode it."""
    ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    return jpeg.tobytes() if ok else None


class PreviewServer:
    def __init__(self, port: int) -> None:
        self._cond = threading.Condition()
        self._jpegs: dict[str, tuple[int, bytes]] = {}   # stream -> (sequence number, newest JPEG)
        self._streams: list[str] = []
        self._viewers = 0
        self._closed = False
        self._http = BoundedHTTPServer(("127.0.0.1", port), _handler(self))
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()

    @property
    def watched(self) -> bool:
        return self._viewers > 0

    def add_stream(self, stream: str) -> None:
        with self._cond:
            if stream not in self._streams:
                self._streams.append(stream)

    def remove_stream(self, stream: str) -> None:
        """An ended or removed stream leaves the page, and its viewers' responses end."""
        with self._cond:
            if stream in self._streams:
                self._streams.remove(stream)
            self._jpegs.pop(stream, None)
            self._cond.notify_all()

    def update(self, stream: str, jpeg: bytes) -> None:
        """Offer the newest annotated frame of a stream (encoded by `encode_jpeg`) to its viewers."""
        with self._cond:
            seq = self._jpegs.get(stream, (0, b""))[0] + 1
            self._jpegs[stream] = (seq, jpeg)
            self._cond.notify_all()

    def page(self) -> bytes:
        with self._cond:
            streams = list(self._streams)
        items = "".join(f'<li><h2>{html.escape(s)}</h2><img src="/stream/{urllib.parse.quote(s)}.mjpg" '
                        f'alt="{html.escape(s)}"></li>' for s in streams)
        return (f"<!doctype html><html><head><meta charset=utf-8><title>siammask preview</title></head>"
                f"<body style='margin:0;background:#222;color:#eee;font-family:sans-serif'>"
                f"<ul style='list-style:none;margin:0;padding:8px'>{items or '<li>no streams yet</li>'}</ul>"
                f"</body></html>").encode()

    def frames(self, stream: str):
        """JPEGs of one stream as they come, until the server closes."""
        seen = 0
        with self._cond:
            self._viewers += 1
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._closed or stream not in self._streams
                                        or self._jpegs.get(stream, (0,))[0] > seen, timeout=1.0)
                    if self._closed or stream not in self._streams:
                        return
                    seq, jpeg = self._jpegs.get(stream, (0, b""))
                if seq > seen:
                    seen = seq
                    yield jpeg
        finally:
            with self._cond:
                self._viewers -= 1
                if not self._viewers:  # nothing is encoded until the next viewer: what is kept goes stale
                    self._jpegs.clear()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._http.shutdown()
        self._http.server_close()


def _handler(server: PreviewServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
            if path == "/":
                self._send(200, "text/html; charset=utf-8", server.page())
            elif path.startswith("/stream/") and path.endswith(".mjpg"):
                self._mjpeg(path[len("/stream/"):-len(".mjpg")])
            else:
                self._send(404, "text/plain", b"not found\n")

        def _send(self, code: int, kind: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _mjpeg(self, stream: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            for jpeg in server.frames(stream):  # a viewer that leaves: see BoundedThreads.handle_error
                self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                                 f"Content-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n")
                self.wfile.flush()

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return  # no access log on stderr

    return Handler
