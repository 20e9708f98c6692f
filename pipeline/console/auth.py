"""Who may use the console: a request needs the run's token (`Authorization: Bearer`, or the cookie
the first `/?token=` visit sets: HttpOnly, SameSite=Strict), must name the console's own address in
`Host` (a page on another name resolved to 127.0.0.1, DNS rebinding, is refused) and, when a browser
says where it comes from (`Origin`, `Sec-Fetch-Site`), come from the console's own pages."""
from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from ..endpoints import is_loopback_host

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def new_token() -> str:
    """A random token for one run (printed once, with the URL)."""
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class Refusal:
    status: int                    # 401: no or wrong token; 403: wrong Host or Origin
    error: str


@dataclass(frozen=True)
class Access:
    token: str
    port: int
    hosts: frozenset[str] | None   # Host headers this console answers to; None: any (a wildcard or a name)

    @classmethod
    def for_address(cls, host: str, port: int, token: str) -> Access:
        """Loopback: its names; one IP address: that one; 0.0.0.0 or a host name: any Host (the
        token, required there, keeps others out; a rebound page never has the cookie)."""
        if is_loopback_host(host):
            names = {*LOOPBACK_NAMES, host}
        else:
            try:
                address = ipaddress.ip_address(host)
            except ValueError:
                return cls(token, port, None)
            if address.is_unspecified:
                return cls(token, port, None)
            names = {f"[{host}]" if address.version == 6 else host}
        return cls(token, port, frozenset(f"{n}:{port}" for n in names))

    @property
    def cookie(self) -> str:
        """Cookies ignore ports: one name per console, so two on one host do not clash."""
        return f"siammask_console_{self.port}"

    def set_cookie(self) -> str:
        return f"{self.cookie}={self.token}; HttpOnly; SameSite=Strict; Path=/"

    def token_matches(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def check(self, headers: Mapping[str, str]) -> Refusal | None:
        """None when the request may go on."""
        host = headers.get("Host", "")
        if self.hosts is not None and host not in self.hosts:
            return Refusal(403, f"Host '{host[:80]}' is not this console's address; open it as "
                                f"http://127.0.0.1:{self.port}/ or the address serve printed")
        origin = headers.get("Origin")
        if origin is not None and origin != f"http://{host}":
            return Refusal(403, f"a request from the page '{origin[:80]}' is refused: only the console's own "
                                "page may call its API")
        if headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
            return Refusal(403, "a request from another site is refused: only the console's own page may call "
                                "its API")
        if not (self.token_matches(_bearer(headers.get("Authorization"))) or
                self.token_matches(_cookie(headers.get("Cookie"), self.cookie))):
            return Refusal(401, "missing or wrong token: open the URL serve printed (with ?token=...) or send "
                                "'Authorization: Bearer TOKEN'")
        return None


def _bearer(value: str | None) -> str | None:
    if value and value[:7].lower() == "bearer ":
        return value[7:].strip()
    return None


def _cookie(value: str | None, name: str) -> str | None:
    for part in (value or "").split(";"):
        key, _, found = part.strip().partition("=")
        if key == name:
            return found
    return None
