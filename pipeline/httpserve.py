"""The HTTP servers of serve (metrics, preview): one thread per connection, but at most
MAX_CONNECTIONS of them, each closed after IDLE_TIMEOUT_S without a byte moving, and a client that
leaves early is no traceback. Before, 3,000 half-open connections held 3,000 threads for good."""
from __future__ import annotations

import json
import socket
import sys
import threading
from collections.abc import Callable
from http.server import HTTPServer
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import CollectorRegistry, make_wsgi_app

from .process import log

MAX_CONNECTIONS = 32   # browsers open about 6 per host; Prometheus 1
IDLE_TIMEOUT_S = 10.0  # a request not sent, or a frame not taken, within this closes the connection


class BoundedThreads(ThreadingMixIn):
    """ThreadingMixIn with a cap: a connection over `max_connections` is closed at once, unanswered."""

    daemon_threads = True
    block_on_close = False
    max_connections = MAX_CONNECTIONS
    request_queue_size = 128  # the listen backlog: connections over the cap are accepted and closed

    def server_activate(self) -> None:
        self._slots = threading.BoundedSemaphore(self.max_connections)
        super().server_activate()

    def process_request(self, request: socket.socket, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        request.settimeout(IDLE_TIMEOUT_S)
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: socket.socket, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: socket.socket, client_address) -> None:
        """A client that went away or went quiet is normal; anything else is one log line."""
        error = sys.exc_info()[1]
        if not isinstance(error, (ConnectionError, TimeoutError)):
            log("http", f"a request from {client_address[0]} failed: {type(error).__name__}: {error}")


class BoundedHTTPServer(BoundedThreads, HTTPServer):
    """For a BaseHTTPRequestHandler (the preview)."""


class _MetricsServer(BoundedThreads, WSGIServer):
    pass


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's naming
        return  # no access log on stderr


def serve_metrics(port: int, registry: CollectorRegistry, down: Callable[[], list[str]] | None = None) -> WSGIServer:
    """Prometheus' text format on http://127.0.0.1:PORT/metrics, served from a daemon thread
    (stop it with shutdown() and server_close()); with `down` (the stages not running now), also
    /healthz: 200 while it is empty, else 503, for systemd or Kubernetes probes."""
    server = _MetricsServer(("127.0.0.1", port), _QuietHandler)
    metrics = make_wsgi_app(registry)

    def app(environ: dict, start_response: Callable) -> list[bytes]:
        if down is None or environ.get("PATH_INFO") != "/healthz":
            return metrics(environ, start_response)
        stages = down()
        body = json.dumps({"ok": not stages, "down": stages}).encode()
        start_response("503 Service Unavailable" if stages else "200 OK",
                       [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    server.set_app(app)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
