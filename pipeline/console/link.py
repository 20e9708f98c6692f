"""The console inside the supervisor process: its two links to the rest of serve. Control requests
go to the supervisor's own control socket (also bound in-process), so the console is one more client
of the handlers `siammask ctl` uses; annotated JPEGs come from the sink, which encodes them only while
someone watches (`watching`, shared memory) and once per frame whatever the number of viewers."""
from __future__ import annotations

import json
import threading
from typing import Any

import zmq

from siammask.errors import UserError

from ..config import ConsoleConfig, console_address
from ..metrics import Figures
from ..process import log
from .auth import new_token
from .hub import EventLog, FrameBoard
from .server import ConsoleServer

CONTROL = "inproc://siammask-console-control"  # bound by the supervisor's control socket too
CALL_TIMEOUT_S = 15.0      # over the supervisor's own request timeout: its answer always comes first
FRAMES_HWM = 4             # JPEGs waiting from the sink; more are dropped by the sink (newest wins)
FIGURES_EVERY_S = 1.0


class Console:
    """Started by the supervisor when `console:` is set; `close` before the ZeroMQ context ends."""

    def __init__(self, cfg: ConsoleConfig, ctx: zmq.Context, events: EventLog, registry: Any, watching: Any,
                 frames_endpoint: str) -> None:
        self.ctx = ctx
        self.server: ConsoleServer | None = None
        self.board = FrameBoard(watching)
        self._frames = ctx.socket(zmq.PULL)
        self._frames.linger = 0
        self._frames.rcvhwm = FRAMES_HWM
        self._frames.bind(frames_endpoint)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()
        host, port = console_address(cfg)
        token = cfg.token or new_token()
        try:
            self.server = ConsoleServer(host, port, token, self.call, self.board, events,
                                        Figures(registry, FIGURES_EVERY_S))
        except OSError as exc:
            self.close()
            raise UserError(f"cannot serve the console on {host}:{port}: {exc.strerror}; pick another port") from None
        shown = host if ":" not in host else f"[{host}]"
        where = f"http://{shown}:{self.server.port}/"
        log("console", f"console on {where}?token={token}" if cfg.token is None else
            f"console on {where} (token from the config: open {where}?token=TOKEN)")

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        """One control request through the supervisor's handlers, from an HTTP thread."""
        sock = self.ctx.socket(zmq.DEALER)
        sock.linger = 0
        sock.rcvtimeo = int(CALL_TIMEOUT_S * 1000)
        try:
            sock.connect(CONTROL)
            sock.send(json.dumps(request).encode())
            return json.loads(sock.recv())
        except zmq.Again:
            return {"ok": False, "error": f"no answer from serve within {CALL_TIMEOUT_S:g} s"}
        except zmq.ContextTerminated:
            return {"ok": False, "error": "serve is stopping"}
        finally:
            sock.close()

    def _receive(self) -> None:
        while not self._stop.is_set():
            if self._frames.poll(200):
                parts = self._frames.recv_multipart()
                if len(parts) == 2:  # (stream id, JPEG) from the sink
                    self.board.put(parts[0].decode(errors="replace"), parts[1])
        self._frames.close()

    def close(self) -> None:
        """The frames socket is closed by its thread, before the context ends."""
        if self.server is not None:
            self.server.close()
        self.board.close()
        self._stop.set()
        self._thread.join()
