"""The control protocol: one JSON object per request, one JSON reply ({"ok": true, ...} or
{"ok": false, "error": "..."}), over a ZeroMQ ROUTER (serve) / DEALER (`siammask ctl`) pair.

    {"cmd": "list"}
    {"cmd": "add_target", "stream": ID, "box": [x, y, w, h]}   -> {"ok": true, "target": N}
    {"cmd": "remove_target", "stream": ID, "target": N}
    {"cmd": "add_stream", "stream": {"id": ID, "source": ..., "boxes": [...], "loop": false, ...}}
    {"cmd": "remove_stream", "stream": ID}
    {"cmd": "pause", "stream": ID}, {"cmd": "resume", "stream": ID}
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import zmq

from siammask.errors import UserError

from .security import CurveKeys, apply_client_keys

SCHEMA: dict[str, dict[str, type]] = {
    "list": {},
    "add_target": {"stream": str, "box": list},
    "remove_target": {"stream": str, "target": int},
    "add_stream": {"stream": dict},
    "remove_stream": {"stream": str},
    "pause": {"stream": str},
    "resume": {"stream": str},
}


@dataclass(frozen=True)
class Request:
    cmd: str
    args: dict[str, Any]


def parse_request(raw: bytes) -> Request:
    """Check a request against SCHEMA; anything else is a UserError whose text becomes the reply."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise UserError("request is not JSON; send an object like {\"cmd\": \"list\"}") from None
    if not isinstance(data, dict) or not isinstance(data.get("cmd"), str):
        raise UserError("request must be a JSON object with a string 'cmd'")
    cmd = data.pop("cmd")
    if cmd not in SCHEMA:
        raise UserError(f"unknown command '{cmd}'; known: {', '.join(SCHEMA)}")
    fields = SCHEMA[cmd]
    unknown = sorted(set(data) - set(fields))
    missing = sorted(set(fields) - set(data))
    if unknown or missing:
        raise UserError(f"'{cmd}' takes {', '.join(fields) or 'no arguments'}"
                        + (f"; unknown: {', '.join(unknown)}" if unknown else "")
                        + (f"; missing: {', '.join(missing)}" if missing else ""))
    for key, kind in fields.items():
        if not isinstance(data[key], kind) or isinstance(data[key], bool):
            raise UserError(f"'{cmd}': {key} must be a {kind.__name__}, got {data[key]!r}")
    if "box" in data:
        data["box"] = parse_box(data["box"])
    return Request(cmd, data)


def parse_box(values: list) -> tuple[float, float, float, float]:
    """Four finite numbers; whether they fit the frame is for the tracker to say."""
    if len(values) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise UserError(f"box {values!r} must be 4 numbers: x, y, w, h")
    if not all(math.isfinite(v) for v in values):
        raise UserError(f"box {values!r} has a non-finite value")
    return tuple(float(v) for v in values)  # type: ignore[return-value]


def request(endpoint: str, payload: dict[str, Any], keys: CurveKeys | None, timeout_s: float) -> dict[str, Any]:
    """Send one request and wait for its reply (what `siammask ctl` does)."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.rcvtimeo = int(timeout_s * 1000)
    try:
        if keys and endpoint.startswith("tcp://"):
            apply_client_keys(sock, keys)
        sock.connect(endpoint)
        sock.send(json.dumps(payload).encode())
        try:
            return json.loads(sock.recv())
        except zmq.Again:
            raise UserError(f"no reply from '{endpoint}' within {timeout_s:g} s; is 'siammask serve' running "
                            "there (and are the CURVE keys right)?") from None
    finally:
        sock.close()
        ctx.term()
