"""A client of `siammask serve --console` for tests: the port and token serve printed, HTTP calls
with or without the token, and the event stream read until an event of interest."""
from __future__ import annotations

import http.client
import json
import re

from pipeline_support import Serve

URL = re.compile(r"\[console\]: console on http://127\.0\.0\.1:(\d+)/\?token=(\S+)")
PAGE_WAIT_S = 60  # liveness bound for what the console shows (a loaded two-core box)


class Console:
    """The console of a running serve: its port and token as serve printed them, and HTTP calls."""

    def __init__(self, serve: Serve) -> None:
        self.serve = serve
        found = URL.search(serve.log())
        assert found, f"serve printed no console URL:\n{serve.log()}"
        self.port, self.token = int(found.group(1)), found.group(2)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/?token={self.token}"

    def request(self, method: str, path: str, body: bytes | dict | None = None, token: str | None = "",
                headers: dict | None = None) -> tuple[int, dict]:
        """(status, JSON reply); `token` None sends none, "" the right one."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        sent = {} if token is None else {"Authorization": f"Bearer {token or self.token}"}
        raw = json.dumps(body).encode() if isinstance(body, dict) else body
        try:
            conn.request(method, path, body=raw, headers={**sent, **(headers or {})})
            reply = conn.getresponse()
            data = reply.read()
            return reply.status, json.loads(data) if reply.getheader("Content-Type") == "application/json" else data
        finally:
            conn.close()

    def ok(self, method: str, path: str, body: dict | None = None) -> dict:
        status, reply = self.request(method, path, body)
        assert status == 200, (status, reply)
        return reply

    def events(self, predicate, timeout_s: float = PAGE_WAIT_S, after: int | None = None) -> list[dict]:
        """Events from GET /api/events (the kept ones first, or those after id `after`) until one
        satisfies `predicate`."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout_s)
        seen = []
        try:
            resume = {} if after is None else {"Last-Event-ID": str(after)}
            conn.request("GET", "/api/events", headers={"Authorization": f"Bearer {self.token}", **resume})
            reply = conn.getresponse()
            assert reply.status == 200 and reply.getheader("Content-Type") == "text/event-stream"
            while True:
                line = reply.fp.readline()
                assert line, f"the event stream ended; seen {seen}"
                if line.startswith(b"data: "):
                    seen.append(json.loads(line[6:]))
                    if predicate(seen[-1]):
                        return seen
        finally:
            conn.close()
