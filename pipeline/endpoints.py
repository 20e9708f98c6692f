"""Where sockets live: private ipc:// files for stages on one host, and the rule that anything
reachable beyond loopback must be protected by CURVE keys."""
from __future__ import annotations

import ipaddress
import shutil
import tempfile
from pathlib import Path
from typing import Any

from siammask.errors import UserError

SCHEMES = ("tcp", "ipc")
MAX_TMPDIR_CHARS = 60


def _split(endpoint: str, what: str) -> tuple[str, str]:
    scheme, sep, rest = endpoint.partition("://")
    if not sep or scheme not in SCHEMES or not rest:
        raise UserError(f"{what} '{endpoint}' is not a ZeroMQ endpoint; use tcp://HOST:PORT or ipc:///path")
    return scheme, rest


def is_loopback(endpoint: str) -> bool:
    """ipc:// and tcp:// on 127.0.0.0/8, ::1 or localhost stay on this host; '*' and others do not."""
    scheme, rest = _split(endpoint, "endpoint")
    if scheme == "ipc":
        return True
    host = rest.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # '*', an interface name or a host name: may be reachable from outside


def check_bind_endpoint(endpoint: str, what: str, curve: Any) -> None:
    """Binding beyond loopback without CURVE keys would let anyone on the network in."""
    scheme, rest = _split(endpoint, what)
    if scheme == "tcp" and ":" not in rest:
        raise UserError(f"{what} '{endpoint}' has no port; use tcp://HOST:PORT")
    if curve is None and not is_loopback(endpoint):
        raise UserError(f"{what} '{endpoint}' is reachable beyond this host and needs CURVE keys: "
                        "run 'siammask keys --out DIR' and set curve: in the config (or bind to 127.0.0.1)")


def check_connect_endpoint(endpoint: str, what: str) -> None:
    """A remote endpoint must at least be well-formed; the peer enforces its own keys."""
    _split(endpoint, what)


class RunDir:
    """A private (0700) temporary folder for this run's ipc sockets and metrics files, removed at the end."""

    def __init__(self) -> None:
        # ipc:// paths must fit in a unix socket address (about 107 bytes): a deep TMPDIR falls back to /tmp.
        base = None if len(tempfile.gettempdir()) <= MAX_TMPDIR_CHARS else "/tmp"
        self.path = Path(tempfile.mkdtemp(prefix="siammask-serve-", dir=base))
        self._next = 0

    def endpoint(self, name: str) -> str:
        """A fresh ipc:// endpoint in the folder; numbered, so stream ids never reach a file name."""
        self._next += 1
        return f"ipc://{self.path / f'{self._next}-{name}'}"

    def sub(self, name: str) -> Path:
        folder = self.path / name
        folder.mkdir(exist_ok=True)
        return folder

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
