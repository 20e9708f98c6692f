"""The console's JSON API as control requests: each route becomes the request `siammask ctl` would
send, so the supervisor's control handlers check it and act on it (one code path, one set of
refusals), and each refusal becomes an HTTP status."""
from __future__ import annotations

from typing import Any

from siammask.errors import UserError
from siammask.validate import json_object

MAX_BODY_BYTES = 64 * 1024


class NotFound(Exception):
    """No such route (404)."""


def control_request(method: str, parts: list[str], body: bytes) -> dict[str, Any]:
    """The control request for `method` on /api/PARTS with `body` (JSON), or NotFound, or a
    UserError for a body that is not a JSON object."""
    if parts[:1] != ["streams"]:
        raise NotFound
    rest, route = parts[1:], (method, len(parts))
    if route == ("GET", 1):
        return _merge({"cmd": "list"}, body)
    if route == ("POST", 1):
        stream = _body(body)
        if "box" in stream:  # the page's form: one optional first box
            if "boxes" in stream:
                raise UserError("give 'box' or 'boxes', not both")
            stream["boxes"] = [stream.pop("box")]
        return {"cmd": "add_stream", "stream": stream}
    if route == ("DELETE", 2):
        return _merge({"cmd": "remove_stream", "stream": rest[0]}, body)
    if route == ("POST", 3) and rest[1] in ("pause", "resume"):
        return _merge({"cmd": rest[1], "stream": rest[0]}, body)
    if route == ("POST", 3) and rest[1] == "targets":
        return _merge({"cmd": "add_target", "stream": rest[0]}, body)
    if route == ("DELETE", 4) and rest[1] == "targets":
        return _merge({"cmd": "remove_target", "stream": rest[0], "target": _number(rest[2])}, body)
    raise NotFound


def _body(body: bytes) -> dict[str, Any]:
    return json_object(body, MAX_BODY_BYTES) if body.strip() else {}


def _merge(request: dict[str, Any], body: bytes) -> dict[str, Any]:
    """The URL's fields and the body's; the control handler refuses what the command does not take."""
    fields = _body(body)
    clash = sorted(set(fields) & {*request, "cmd"})
    if clash:
        raise UserError(f"'{clash[0][:40]}' comes from the URL, not the body")
    return {**request, **fields}


def _number(text: str) -> int | str:
    """A target id as the control request takes it; anything else goes as text, to be refused there."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else text


# A refused control request's status, by the start of its error (the rest is 400: the request's fault).
STATUS_BY_ERROR = (("no stream ", 404), ("internal error", 500),
                   ("the inference stage is starting", 503), ("no answer from the inference stage", 504))


def status_of(error: str) -> int:
    if " has no target " in error:
        return 404
    for start, status in STATUS_BY_ERROR:
        if error.startswith(start):
            return status
    return 400
