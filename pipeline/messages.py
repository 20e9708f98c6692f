"""The message between stages: a small JSON header and, when there is a frame, its raw pixels as a
second part sent without copying (the receiver gets a numpy view of ZeroMQ's buffer, not a copy)."""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import zmq

Payload = np.ndarray | zmq.Frame | None


def send(sock: zmq.Socket, header: dict[str, Any], payload: Payload = None, block: bool = False) -> bool:
    """Send header (+ frame); False when the peer's queue is full (the caller counts the drop).
    `block` waits for room (up to the socket's SNDTIMEO): for messages that must not be lost."""
    flags = 0 if block else zmq.NOBLOCK
    if payload is not None and not isinstance(payload, zmq.Frame):
        payload = np.ascontiguousarray(payload)
        header = {**header, "dtype": payload.dtype.str, "shape": list(payload.shape)}
    try:
        if payload is None:
            sock.send(json.dumps(header).encode(), flags)
        else:
            sock.send(json.dumps(header).encode(), flags | zmq.SNDMORE)
            sock.send(payload, flags, copy=False)
    except zmq.Again:
        return False
    return True


def recv(sock: zmq.Socket, block: bool = True) -> tuple[dict[str, Any], zmq.Frame | None] | None:
    """One message as (header, raw frame part or None); None when nothing is waiting and not `block`."""
    try:
        parts = sock.recv_multipart(0 if block else zmq.NOBLOCK, copy=False)
    except zmq.Again:
        return None
    header = json.loads(parts[0].bytes)
    return header, (parts[1] if len(parts) > 1 else None)


def drain(sock: zmq.Socket) -> list[tuple[dict[str, Any], zmq.Frame | None]]:
    """Everything waiting now, oldest first, so the caller can keep the newest and count the rest."""
    out = []
    while (msg := recv(sock, block=False)) is not None:
        out.append(msg)
    return out


def as_array(header: dict[str, Any], part: zmq.Frame) -> np.ndarray:
    """The frame as a view of the received buffer (no copy); stages only read it."""
    return np.frombuffer(part.buffer, dtype=np.dtype(header["dtype"])).reshape(header["shape"])
