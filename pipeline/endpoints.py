"""Where sockets live: private ipc:// files for stages on one host, and the rule that anything
reachable beyond loopback must be protected by CURVE keys."""
from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import stat
import tempfile
import time
from pathlib import Path
from typing import Any

import zmq

from siammask.errors import UserError

SCHEMES = ("tcp", "ipc")
MAX_TMPDIR_CHARS = 60
RUN_PREFIX = "siammask-serve-"
OWNER_FILE = "owner"          # pid and start time of the serve that made the folder
UNOWNED_GRACE_S = 60.0        # a folder without an owner file older than this is left over, not being made


def _split(endpoint: str, what: str, any_port: bool = True) -> tuple[str, str]:
    """Scheme and address; `any_port`: port '*' (ZeroMQ binds a free one) is allowed, as it is to bind."""
    scheme, sep, rest = endpoint.partition("://")
    if not sep or scheme not in SCHEMES or not rest:
        raise UserError(f"{what} '{endpoint}' is not a ZeroMQ endpoint; use tcp://HOST:PORT or ipc:///path")
    if scheme == "tcp":
        port = rest.rsplit(":", 1)[1] if ":" in rest else ""
        if port == "*" and not any_port:
            raise UserError(f"{what} '{endpoint}' is connected to, so it needs a port number, not '*'")
        if not (port == "*" or port.isdigit() and 0 < int(port) < 65536):
            raise UserError(f"{what} '{endpoint}' has no valid port; use tcp://HOST:PORT with a port from 1 to 65535")
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
    _split(endpoint, what)
    if curve is None and not is_loopback(endpoint):
        raise UserError(f"{what} '{endpoint}' is reachable beyond this host and needs CURVE keys: "
                        "run 'siammask keys --out DIR' and set curve: in the config (or bind to 127.0.0.1)")


def check_connect_endpoint(endpoint: str, what: str) -> None:
    """A remote endpoint must at least be well-formed, with a port; the peer enforces its own keys."""
    _split(endpoint, what, any_port=False)


def bound_endpoint(sock: zmq.Socket) -> str:
    """Where `sock` was bound last: with the port ZeroMQ picked for a port '*'."""
    return sock.getsockopt_string(zmq.LAST_ENDPOINT)


class RunDir:
    """A private (0700) temporary folder for this run's ipc sockets and metrics files, removed at the
    end. A serve killed with SIGKILL cannot remove its own: the next one does (folders whose owner
    process is gone), so they never pile up."""

    def __init__(self) -> None:
        # ipc:// paths must fit in a unix socket address (about 107 bytes): a deep TMPDIR falls back to /tmp.
        base = Path(tempfile.gettempdir() if len(tempfile.gettempdir()) <= MAX_TMPDIR_CHARS else "/tmp")
        remove_stale_run_dirs(base)
        self.path = Path(tempfile.mkdtemp(prefix=RUN_PREFIX, dir=base))
        (self.path / OWNER_FILE).write_text(process_id(os.getpid()))
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


def remove_stale_run_dirs(base: Path) -> list[Path]:
    """Remove this user's run folders in `base` whose serve process no longer exists."""
    removed = []
    for folder in base.glob(f"{RUN_PREFIX}*"):
        try:
            info = folder.lstat()
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
                continue
            owner = (folder / OWNER_FILE).read_text() if (folder / OWNER_FILE).exists() else None
        except OSError:
            continue
        if owner is None and time.time() - info.st_mtime < UNOWNED_GRACE_S:
            continue  # being made right now by another serve
        if owner is not None and _process_alive(owner):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def process_id(pid: int) -> str:
    """'PID START': the start time tells a live owner from a later process that reuses its pid."""
    return f"{pid} {_start_time(pid)}"


def _start_time(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "?"  # no /proc: the pid alone has to do


def _process_alive(owner: str) -> bool:
    try:
        pid_text, started = owner.split()
        pid = int(pid_text)
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone's process: not ours to judge
    except ValueError:
        return False  # unreadable owner file
    return started == "?" or _start_time(pid) == started


def free_tcp_endpoint(address: str) -> str:
    """tcp://ADDRESS:PORT with a port free on `address` now, for a stage started elsewhere to bind
    (its own bind cannot report a '*' port back to the process that connects to it)."""
    with socket.socket() as s:
        s.bind((address, 0))
        return f"tcp://{address}:{s.getsockname()[1]}"
