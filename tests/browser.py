"""Headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: commands
on fd 3, replies on fd 4, each a JSON text ended by a NUL byte), so tests use the system's browser
with nothing but the standard library: no Playwright, no WebSocket client, no browser download."""
from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline_support import terminate

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-sync",
         "--disable-component-update", "--no-first-run", "--no-default-browser-check", "--remote-debugging-pipe")
REPLY_TIMEOUT_S = 60  # hang guard only: a loaded two-core box can be slow to answer


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("chromium is not installed (.ci/run installs Debian's chromium package)")
    return found


def _above_four(fd: int) -> int:
    """The same pipe end on a number above 4, so moving it to 3 or 4 in the child never closes it."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return moved


class Browser:
    """One page of a fresh headless Chromium with a width x height viewport; `evaluate` runs
    JavaScript in it, `drag` and `click` move the mouse as a person would (press, moves, release at
    viewport coordinates)."""

    def __init__(self, profile: Path, width: int = 1280, height: int = 900) -> None:
        to_browser, self._write = os.pipe()
        self._read, from_browser = os.pipe()
        to_browser, from_browser = (_above_four(fd) for fd in (to_browser, from_browser))

        # the browser's fd 3 reads our commands and its fd 4 writes replies: the shell moves them there
        moves = f'exec "$0" "$@" 3<&{to_browser} 4>&{from_browser} {to_browser}<&- {from_browser}>&-'
        self.proc = subprocess.Popen(["bash", "-c", moves, chromium_path(), *FLAGS, f"--user-data-dir={profile}",
                                      f"--window-size={width},{height}", "about:blank"],
                                     pass_fds=(to_browser, from_browser),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser)
        os.close(from_browser)
        self._buffer, self._next, self.session = b"", 0, None
        page = next(t for t in self.send("Target.getTargets")["targetInfos"] if t["type"] == "page")
        self.session = self.send("Target.attachToTarget", targetId=page["targetId"], flatten=True)["sessionId"]
        self.send("Page.enable")
        self.send("Runtime.enable")
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._next += 1
        message = {"id": self._next, "method": method, "params": params}
        if self.session is not None:
            message["sessionId"] = self.session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        end = time.monotonic() + REPLY_TIMEOUT_S
        while True:
            reply = self._message(end)
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def _message(self, end: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            if time.monotonic() > end or self.proc.poll() is not None:
                raise RuntimeError("chromium did not answer")
            chunk = os.read(self._read, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed its pipe")
            self._buffer += chunk
        text, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(text)

    def open(self, url: str) -> None:
        self.send("Page.navigate", url=url)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (promises awaited)."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"].get("exception", {}).get("description")
            raise RuntimeError(f"{expression[:80]}: {details}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float, what: str) -> Any:
        """Polls a JavaScript expression until it is truthy; liveness bound only."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            try:
                value = self.evaluate(expression)
            except RuntimeError:  # the page is loading
                value = None
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")

    def _mouse(self, kind: str, x: float, y: float, buttons: int) -> None:
        self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", buttons=buttons, clickCount=1)

    def drag(self, start: tuple[float, float], end: tuple[float, float], steps: int = 5) -> None:
        self._mouse("mousePressed", *start, 1)
        for i in range(1, steps + 1):
            self._mouse("mouseMoved", start[0] + (end[0] - start[0]) * i / steps,
                        start[1] + (end[1] - start[1]) * i / steps, 1)
        self._mouse("mouseReleased", *end, 0)

    def click(self, x: float, y: float) -> None:
        self._mouse("mousePressed", x, y, 1)
        self._mouse("mouseReleased", x, y, 0)

    def type(self, text: str) -> None:
        """Text into the focused field, as typed."""
        self.send("Input.insertText", text=text)

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"]))

    def close(self) -> None:
        terminate(self.proc, 30)
        os.close(self._write)
        os.close(self._read)
