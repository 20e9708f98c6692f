"""Where sockets live: this user's private folder (the default control socket, each run's ipc://
files for stages on one host), the rule that anything reachable beyond loopback must be protected
by CURVE keys, and the rule that binding an ipc:// path never replaces anything but a dead socket."""
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
CONTROL_SOCKET = "control"    # the default control endpoint: this file in the private folder
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
    return is_loopback_host(rest.rsplit(":", 1)[0].strip("[]"))


def is_loopback_host(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost; '*', 0.0.0.0, an interface or a host name may be reachable
    from outside."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind_endpoint(endpoint: str, what: str, curve: Any) -> None:
    """Binding beyond loopback without CURVE keys would let anyone on the network in; binding over
    a file or a live socket would take it from its owner."""
    scheme, rest = _split(endpoint, what)
    if scheme == "ipc":
        check_ipc_free(Path(rest), what)
    if curve is None and not is_loopback(endpoint):
        raise UserError(f"{what} '{endpoint}' is reachable beyond this host and needs CURVE keys: "
                        "run 'siammask keys --out DIR' and set curve: in the config (or bind to 127.0.0.1)")


def check_loopback_stages(curve: Any) -> None:
    """Stage sockets on loopback tcp, which processes of another user (a Ray cluster that user runs)
    must reach, are open to every local user: only with CURVE keys."""
    if curve is None:
        raise UserError("the Ray cluster's processes run as another user, so serve's stage sockets would be tcp "
                        "on 127.0.0.1, open to every local user: run 'siammask keys --out DIR' and set curve: in "
                        "the config (or run Ray as serve's user)")


def check_control_endpoint(endpoint: str | None, curve: Any) -> None:
    """The control endpoint changes what serve runs: TCP (any local user reaches loopback) only with
    CURVE keys; unset, it is the ipc:// socket in this user's private folder."""
    if endpoint is None:
        return
    check_bind_endpoint(endpoint, "control", curve)
    if curve is None and endpoint.startswith("tcp://"):
        raise UserError(f"control '{endpoint}' is a TCP endpoint every local user can reach, so it needs CURVE "
                        "keys: run 'siammask keys --out DIR' and set curve: in the config (or leave control unset "
                        "for the private ipc socket)")


def check_stream_endpoint(endpoint: str, what: str) -> None:
    """A stream's endpoint (config or `ctl add-stream`): a TCP address, or an ipc:// path in this
    user's private folder: never an arbitrary file that a capture's bind would replace."""
    scheme, rest = _split(endpoint, what)
    folder = os.path.realpath(private_dir(create=False))
    if scheme == "ipc" and not os.path.realpath(rest).startswith(folder + os.sep):
        raise UserError(f"{what} '{endpoint}' is outside serve's private folder; an ipc:// stream endpoint "
                        f"must be a path in {folder}/ (or use tcp://)")


def check_ipc_free(path: Path, what: str) -> None:
    """Binding an ipc:// path first removes whatever is there: only a socket left by a process that
    ended may go (a file would be deleted; a live socket taken from the program serving on it)."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UserError(f"{what} '{path}': {exc.strerror}") from None
    if not stat.S_ISSOCK(info.st_mode):
        raise UserError(f"{what} '{path}' exists and is not a socket; binding would delete it, so pick a new path")
    with socket.socket(socket.AF_UNIX) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except ConnectionRefusedError:
            return  # nobody listens: left over
        except OSError:
            pass
    raise UserError(f"{what} '{path}' is in use by a running program (another serve?); pick another path")


def check_stage_endpoint(endpoint: str, what: str, local_only: bool, curve: Any) -> None:
    """Cluster mode: where a stage on a node would bind. With every node on this machine at start
    (`local_only`) the stages' sockets are on 127.0.0.1, so a node of another machine that joined
    since can neither reach them nor be reached without CURVE: its stage is refused; otherwise the
    usual rule (beyond loopback only with CURVE keys, which every stage socket then uses)."""
    if local_only and not is_loopback(endpoint):
        raise UserError(late_node(what, endpoint.rsplit(':', 1)[0][len('tcp://'):]))
    check_bind_endpoint(endpoint, what, curve)


def late_node(what: str, address: str) -> str:
    """Why a stage may not run on a node of another machine that joined a cluster of one machine
    after serve started (it cannot reach the stage sockets, on loopback or in the run folder)."""
    return (f"{what} was placed on {address}, a machine that joined the cluster after serve started, out of "
            "reach of serve's sockets on 127.0.0.1: start every node before serve (with curve: keys for nodes "
            "on other machines)")


def check_connect_endpoint(endpoint: str, what: str) -> None:
    """A remote endpoint must at least be well-formed, with a port; the peer enforces its own keys."""
    _split(endpoint, what, any_port=False)


def bound_endpoint(sock: zmq.Socket) -> str:
    """Where `sock` was bound last: with the port ZeroMQ picked for a port '*'."""
    return sock.getsockopt_string(zmq.LAST_ENDPOINT)


def private_dir(create: bool = True) -> Path:
    """This user's folder for serve: $XDG_RUNTIME_DIR/siammask, else siammask-UID in TMPDIR (or /tmp).
    Only its owner can open it (0700), so only the same user reaches the control socket in it, as
    with Docker's. `create`: make it, and refuse one that another user made or can open."""
    # ipc:// paths must fit in a unix socket address (about 107 bytes): a deep folder falls back to /tmp.
    runtime, tmp = os.environ.get("XDG_RUNTIME_DIR", ""), tempfile.gettempdir()
    if runtime.startswith("/") and len(runtime) <= MAX_TMPDIR_CHARS:
        path = Path(runtime) / "siammask"
    else:
        path = Path(tmp if len(tmp) <= MAX_TMPDIR_CHARS else "/tmp") / f"siammask-{os.getuid()}"
    if create:
        try:
            path.mkdir(mode=0o700, exist_ok=True)
            info = path.lstat()
        except OSError as exc:
            raise UserError(f"cannot make serve's private folder '{path}': {exc.strerror}") from None
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
            raise UserError(f"'{path}' is not a folder that only you can open (owner uid {info.st_uid}, mode "
                            f"{stat.filemode(info.st_mode)}); serve keeps its control socket there: remove it")
    return path


def default_control() -> str:
    """Where serve's control socket is when the config names none (and where `siammask ctl` looks)."""
    return f"ipc://{private_dir(create=False) / CONTROL_SOCKET}"


class RunDir:
    """A temporary folder in the private folder for this run's ipc sockets and metrics files,
    removed at the end. A serve killed with SIGKILL cannot remove its own: the next one does (folders
    whose owner process is gone), so they never pile up."""

    def __init__(self) -> None:
        base = private_dir()
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


LISTEN_BACKLOG = 100  # connections waiting for a stage to take them (ZeroMQ's own default)


def hold_tcp(address: str) -> tuple[socket.socket, str]:
    """A socket listening on a free tcp port of `address`, and its endpoint, for a stage that another
    process starts and other stages connect to (their specs name the endpoint before it runs). The
    stage's ZeroMQ socket takes this one over (`Security.bind`'s `listener`: ZeroMQ's USE_FD), so
    the port is held from the moment it is chosen: no other program can bind it before the stage
    does (as it could a port merely found free), a restarted stage takes the same port, and
    connections wait in the backlog while no stage runs. Whoever holds it closes it when the
    endpoint is no longer used."""
    sock = socket.socket()
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as ZeroMQ's own: its closed connections
        sock.bind((address, 0))                                      # (TIME_WAIT) keep no one off the port
        sock.listen(LISTEN_BACKLOG)
    except OSError:
        sock.close()
        raise
    host, port = sock.getsockname()[:2]
    return sock, f"tcp://{host}:{port}"
