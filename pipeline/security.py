"""CURVE encryption and authentication for tcp:// sockets: servers accept only clients whose public
key is in the authorized folder (checked by a ZAP authenticator thread); ipc:// stays plain because
it lives in a private 0700 folder."""
from __future__ import annotations

import shutil
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from siammask.errors import UserError

from .config import CurveConfig
from .endpoints import check_ipc_free


@dataclass(frozen=True)
class CurveKeys:
    server_public: bytes
    server_secret: bytes | None   # None where only the public half was given (a pure client)
    client_public: bytes
    client_secret: bytes
    authorized: str               # folder of authorized client public keys


def _load(path: str, what: str) -> tuple[bytes, bytes | None]:
    try:
        return zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {what} '{path}': {exc}; make keys with 'siammask keys --out DIR'") from None


def load_keys(cfg: CurveConfig) -> CurveKeys:
    """Read the key files the config names."""
    server_public, server_secret = _load(cfg.server_key, "curve.server_key")
    client_public, client_secret = _load(cfg.client_key, "curve.client_key")
    if client_secret is None:
        raise UserError(f"curve.client_key '{cfg.client_key}' holds no secret key; name the .key_secret file")
    return CurveKeys(server_public, server_secret, client_public, client_secret, cfg.authorized_keys)


def write_keys(out: Path) -> list[Path]:
    """server and client key pairs plus an authorized/ folder holding the client's public key."""
    if (out / "server.key_secret").exists() or (out / "client.key_secret").exists():
        raise UserError(f"'{out}' already holds keys; pick an empty folder (old keys are never overwritten)")
    out.mkdir(parents=True, exist_ok=True)
    authorized = out / "authorized"
    authorized.mkdir(exist_ok=True)
    written = []
    for name in ("server", "client"):
        public, secret = zmq.auth.create_certificates(out, name)  # zmq.curve_keypair underneath
        Path(secret).chmod(0o600)
        written += [Path(public), Path(secret)]
    written.append(Path(shutil.copy(out / "client.key", authorized / "client.key")))
    return written


class Security:
    """Binds and connects sockets of one context, with CURVE on tcp:// when keys are configured.
    The ipc:// socket files it bound are removed when it closes (ZeroMQ leaves them behind)."""

    def __init__(self, ctx: zmq.Context, keys: CurveKeys | None) -> None:
        self.ctx = ctx
        self.keys = keys
        self._auth: ThreadAuthenticator | None = None
        self._ipc_files: list[Path] = []

    def bind(self, sock: zmq.Socket, endpoint: str, listener: socket.socket | None = None) -> None:
        """`listener`: the socket listening on `endpoint` that the process which chose its port holds
        (endpoints.hold_tcp); `sock` takes it over instead of binding a port of its own."""
        if self.keys and endpoint.startswith("tcp://"):
            if self.keys.server_secret is None:
                raise UserError("curve.server_key must be the server.key_secret file to bind tcp endpoints")
            self._start_auth()
            sock.curve_secretkey = self.keys.server_secret
            sock.curve_publickey = self.keys.server_public
            sock.curve_server = True
        ipc = Path(endpoint[len("ipc://"):]) if endpoint.startswith("ipc://") else None
        if ipc is not None:
            check_ipc_free(ipc, "cannot bind")
        if listener is not None:
            sock.setsockopt(zmq.USE_FD, listener.detach())  # ZeroMQ closes it with `sock`
        try:
            sock.bind(endpoint)
        except zmq.ZMQError as exc:
            raise UserError(f"cannot bind '{endpoint}': {exc}; is another program (or serve) using it?") from None
        if ipc is not None and ipc.exists():  # (not an abstract-namespace '@name')
            ipc.chmod(0o600)  # only this user connects, wherever the socket is
            self._ipc_files.append(ipc)

    def connect(self, sock: zmq.Socket, endpoint: str) -> None:
        if self.keys and endpoint.startswith("tcp://"):
            apply_client_keys(sock, self.keys)
        sock.connect(endpoint)

    def _start_auth(self) -> None:
        if self._auth is None:
            self._auth = ThreadAuthenticator(self.ctx)
            self._auth.start()
            self._auth.configure_curve(domain="*", location=self.keys.authorized)

    def close(self) -> None:
        """After the sockets are closed: stop the authenticator, remove the ipc files bound here."""
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        for path in self._ipc_files:
            try:
                if stat.S_ISSOCK(path.lstat().st_mode):
                    path.unlink()
            except OSError:
                pass  # already gone (or never a socket of ours)
        self._ipc_files = []


def apply_client_keys(sock: zmq.Socket, keys: CurveKeys) -> None:
    """Authenticate as the client key pair against the server's public key."""
    sock.curve_secretkey = keys.client_secret
    sock.curve_publickey = keys.client_public
    sock.curve_serverkey = keys.server_public
