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
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import zmq

from siammask.errors import UserError
from siammask.validate import box_values, json_object, shorten

from .endpoints import check_connect_endpoint
from .security import CurveKeys, apply_client_keys

MAX_TARGET_ID = 2**31 - 1
MAX_REQUEST_BYTES = 1024 * 1024  # ZeroMQ drops a peer sending more; up to it, json_object answers

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


def no_stream(stream: str, known: Iterable[str]) -> str:
    """The refusal for a stream id that is not registered (ctl and the console say it alike)."""
    return f"no stream '{stream}'; streams: {', '.join(known) or 'none'}"


def parse_request(raw: bytes) -> Request:
    """Check a request against SCHEMA (size, depth, types, boxes); anything else is a UserError whose
    text becomes the reply."""
    data = json_object(raw)
    if not isinstance(data.get("cmd"), str):
        raise UserError("request must be a JSON object with a string 'cmd'")
    cmd = data.pop("cmd")
    if cmd not in SCHEMA:
        raise UserError(f"unknown command '{cmd[:40]}'; known: {', '.join(SCHEMA)}")
    fields = SCHEMA[cmd]
    unknown = sorted(set(data) - set(fields))
    missing = sorted(set(fields) - set(data))
    if unknown or missing:
        raise UserError(f"'{cmd}' takes {', '.join(fields) or 'no arguments'}"
                        + (f"; unknown: {', '.join(k[:40] for k in unknown[:5])}" if unknown else "")
                        + (f"; missing: {', '.join(missing)}" if missing else ""))
    for key, kind in fields.items():
        if not isinstance(data[key], kind) or isinstance(data[key], bool):
            raise UserError(f"'{cmd}': {key} must be a {kind.__name__}, got {shorten(data[key])}")
    if "box" in data:
        data["box"] = box_values(data["box"])
    if "target" in data and not 0 <= data["target"] <= MAX_TARGET_ID:
        raise UserError(f"'{cmd}': target must be an id from 0 to {MAX_TARGET_ID}, got {shorten(data['target'])}")
    return Request(cmd, data)


def request(endpoint: str, payload: dict[str, Any], keys: CurveKeys | None, timeout_s: float) -> dict[str, Any]:
    """Send one request and wait for its reply (what `siammask ctl` does)."""
    check_connect_endpoint(endpoint, "control endpoint")
    if endpoint.startswith("ipc://") and not os.path.exists(endpoint[len("ipc://"):]):
        raise UserError(f"no control socket at '{endpoint[len('ipc://'):]}': is 'siammask serve' running as this "
                        "user? (else give --control, or --config with the serve's config)")
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.rcvtimeo = int(timeout_s * 1000)
    try:
        if keys and endpoint.startswith("tcp://"):
            apply_client_keys(sock, keys)
        sock.connect(endpoint)
        sock.send(json.dumps(payload).encode())
        reply = sock.recv()
    except zmq.Again:
        raise UserError(f"no reply from '{endpoint}' within {timeout_s:g} s; is 'siammask serve' running "
                        "there (and are the CURVE keys right)?") from None
    except zmq.ZMQError as exc:
        raise UserError(f"cannot reach control endpoint '{endpoint}': {exc}") from None
    finally:
        sock.close()
        ctx.term()
    try:
        return json.loads(reply)
    except ValueError:
        raise UserError(f"'{endpoint}' answered something that is not JSON; is it 'siammask serve'?") from None
