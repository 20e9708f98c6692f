"""The console's HTTP server: the page (static files shipped with the package), the JSON API (each
call a control request answered by the supervisor's handlers, see routes.py), Server-Sent Events for
the event log and the live pictures, and snapshots as PNG. Threads from httpserve (bounded, idle
connections closed); every request passes `Access.check` first."""
from __future__ import annotations

import json
import socket
import threading
import urllib.parse
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from importlib import resources
from typing import Any

import cv2
import numpy as np

from siammask.errors import UserError

from ..control import no_stream
from ..httpserve import BoundedThreads
from ..metrics import Figures
from ..process import log
from .auth import Access
from .hub import EventLog, FrameBoard
from .routes import MAX_BODY_BYTES, NotFound, control_request, status_of

STATIC = {"/": ("index.html", "text/html; charset=utf-8"), "/console.js": ("console.js", "text/javascript"),
          "/console.css": ("console.css", "text/css")}
SNAPSHOT_WAIT_S = 5.0      # a snapshot waits this long for a fresh frame, then takes the kept one
MAX_CONNECTIONS = 64       # a page holds two (events, pictures) and opens one per call
HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
           "Cache-Control": "no-store",
           "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"}

Call = Callable[[dict[str, Any]], dict[str, Any]]


class _Server(BoundedThreads, HTTPServer):
    max_connections = MAX_CONNECTIONS


class _Server6(_Server):
    address_family = socket.AF_INET6


class ConsoleServer:
    """Serves on (host, port) from a daemon thread until `close`; `call` sends one control request
    to the supervisor and returns its reply."""

    def __init__(self, host: str, port: int, token: str, call: Call, board: FrameBoard, events: EventLog,
                 figures: Figures) -> None:
        self.board, self.events = board, events
        server = _Server6 if ":" in host else _Server
        self._http = server((host, port), _handler(self, call, figures))
        self.port = self._http.server_address[1]
        self.access = Access.for_address(host, self.port, token)
        self.static = {path: (resources.files(__package__).joinpath("static", name).read_bytes(), kind)
                       for path, (name, kind) in STATIC.items()}
        threading.Thread(target=self._http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.board.close()
        self.events.close()
        self._http.shutdown()
        self._http.server_close()


def _handler(console: ConsoleServer, call: Call, figures: Figures) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        default_request_version = "HTTP/1.0"  # a garbled request line still gets a status line

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            """http.server's own refusals (a garbled request, headers too long) as JSON too."""
            self.close_connection = True
            self._error(code, message or HTTPStatus(code).phrase)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._handle("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._handle("POST")

        def do_DELETE(self) -> None:  # noqa: N802
            self._handle("DELETE")

        def do_PUT(self) -> None:  # noqa: N802
            self._handle("PUT")

        def _handle(self, method: str) -> None:
            url = urllib.parse.urlsplit(self.path)
            path = urllib.parse.unquote(url.path)
            try:
                refusal = console.access.check(self.headers)
                if (refusal is None or refusal.status == 401) and method == "GET" and path == "/":
                    given = urllib.parse.parse_qs(url.query).get("token", [None])[0]
                    if console.access.token_matches(given):  # the printed URL: set the cookie, drop the token
                        self._send(303, "text/plain", b"", {"Location": "/",
                                                            "Set-Cookie": console.access.set_cookie()})
                        return
                if refusal:
                    self._error(refusal.status, refusal.error)
                    return
                body = self._body()
                if body is None:
                    return
                if path in STATIC and method == "GET":
                    self._send(200, STATIC[path][1], console.static[path][0])
                elif path.startswith("/api/"):
                    self._api(method, path[len("/api/"):].split("/"), body)
                else:
                    self._error(404, f"no page '{path[:80]}'")
            except UserError as exc:
                self._error(400, str(exc))
            except (ConnectionError, TimeoutError):
                raise
            except Exception as exc:  # noqa: BLE001 - one bad request must not reach the server thread
                log("console", f"{method} {path[:200]} failed: {type(exc).__name__}: {exc}")
                self._error(500, f"internal error ({type(exc).__name__}); see the serve log")

        def _body(self) -> bytes | None:
            """The request body, at most MAX_BODY_BYTES, read only once its length is known."""
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                self._error(411, "send a Content-Length, not a chunked body")
                return None
            length = self.headers.get("Content-Length", "0")
            if not (length.isascii() and length.isdigit()):
                self._error(400, "Content-Length is not a number")
                return None
            if int(length) > MAX_BODY_BYTES:
                self._error(413, f"a body of {length[:20]} bytes is over the limit of {MAX_BODY_BYTES}")
                return None
            return self.rfile.read(int(length))

        def _api(self, method: str, parts: list[str], body: bytes) -> None:
            if method == "GET" and parts == ["events"]:
                after = self.headers.get("Last-Event-ID", "0")
                self._events(int(after) if after.isascii() and after.isdigit() and len(after) < 18 else 0)
            elif method == "GET" and parts == ["frames"]:
                self._frames()
            elif method == "GET" and len(parts) == 3 and parts[0] == "streams" and parts[2] == "snapshot.png":
                self._snapshot(parts[1])
            else:
                try:
                    request = control_request(method, parts, body)
                except NotFound:
                    self._error(404, f"no API call {method} /api/{'/'.join(parts)[:80]}")
                    return
                reply = call(request)
                if not reply.get("ok"):
                    error = str(reply.get("error", "refused"))
                    self._error(status_of(error), error)
                    return
                reply.pop("ok")
                if request["cmd"] == "list":
                    console.board.keep({s["id"] for s in reply["streams"]})
                    streams, restarts = figures.take()
                    for stream in reply["streams"]:
                        stream["figures"] = streams.get(stream["id"])
                    reply["restarts"] = restarts
                self._json(200, reply)

        def _snapshot(self, stream: str) -> None:
            """The registry says which streams exist: a picture may arrive after its stream's removal."""
            known = [s["id"] for s in call({"cmd": "list"}).get("streams", [])]
            console.board.keep(set(known))
            if stream not in known:
                self._error(404, no_stream(stream[:64], known))
                return
            jpeg = console.board.wait_fresh(stream, SNAPSHOT_WAIT_S)
            if jpeg is None:
                self._error(404, f"no picture of stream '{stream[:64]}' yet: no frame of it has been processed")
                return
            ok, png = cv2.imencode(".png", cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR))
            self._send(200, "image/png", png.tobytes(), {"Content-Disposition": 'inline; filename="snapshot.png"'})

        def _stream_start(self) -> None:
            self.send_response(200)
            for key, value in {**HEADERS, "Content-Type": "text/event-stream"}.items():
                self.send_header(key, value)
            self.end_headers()

        def _events(self, after: int) -> None:
            self._stream_start()
            for batch in console.events.follow(after):
                text = "".join(f"id: {e['id']}\ndata: {json.dumps(e)}\n\n" for e in batch) or ": keep-alive\n\n"
                self.wfile.write(text.encode())
                self.wfile.flush()

        def _frames(self) -> None:
            self._stream_start()
            for events in console.board.updates():
                self.wfile.write(events or b": keep-alive\n\n")
                self.wfile.flush()

        def _json(self, status: int, data: dict[str, Any]) -> None:
            self._send(status, "application/json", json.dumps(data, allow_nan=False).encode())

        def _error(self, status: int, error: str) -> None:
            self._json(status, {"error": error.splitlines()[0] if error else "refused"})

        def _send(self, status: int, kind: str, body: bytes, extra: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for key, value in {**HEADERS, "Content-Type": kind, "Content-Length": str(len(body)),
                               **(extra or {})}.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return  # no access log on stderr

    return Handler
