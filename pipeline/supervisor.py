"""The supervisor: starts the stage processes (pipeline/children.py restarts the ones that die; a
new inference process gets every target back from its init frame and box), answers `siammask ctl`
(pipeline/handlers.py), serves the metrics, logs a summary line, and on SIGINT/SIGTERM stops the
stages in flow order so every result already computed is written.

It owns the registry of streams and targets (pipeline/registry.py) and the stage processes
(pipeline/stages.py); this module is its loop, its sockets and its stop."""
from __future__ import annotations

import multiprocessing
import signal
import time

import zmq

from siammask.errors import UserError

from .config import PipelineConfig, control_endpoint
from .console.hub import EventLog
from .control import MAX_REQUEST_BYTES
from .endpoints import RunDir, bound_endpoint
from .exits import FATAL
from .handlers import Handlers
from .httpserve import serve_metrics
from .launch import Launcher, LocalLauncher
from .metrics import StageMetrics, SummaryLine, TargetFigures
from .process import log, stop_resource_tracker
from .registry import Registry
from .security import Security, load_keys
from .stages import Stages
from .transport import ZmqSupervisorLink

REQUESTS_PER_TURN = 100  # control requests handled before the loop looks after the stages again


class Supervisor:
    def __init__(self, cfg: PipelineConfig, run_dir: RunDir, launcher: Launcher | None = None) -> None:
        self.cfg, self.run_dir = cfg, run_dir
        self.launcher = launcher or LocalLauncher(run_dir)
        mp = multiprocessing.get_context("spawn")
        self.ctx = zmq.Context()
        self.security = Security(self.ctx, load_keys(cfg.curve) if cfg.curve else None)
        self.registry = Registry(cfg, mp)
        for stream in cfg.streams:
            self.registry.register(stream, self.launcher.frames_endpoint(stream))
        self.stopping = False
        self.exit_code = 0
        self.control: zmq.Socket | None = None
        self.link: ZmqSupervisorLink | None = None
        self.http = None
        self.events = EventLog()              # what the console shows; kept whether or not it runs
        self.console = None
        self.metrics = StageMetrics(str(run_dir.sub("metrics")), lambda: tuple(self.registry.streams))
        self.metrics.registry.register(TargetFigures(self.registry.target_figures, self.registry.stream_figures))
        self.stages = Stages(cfg, self.launcher, self.registry, self.security, self.events, self.metrics, mp,
                             run_dir.endpoint("console"))
        self.handlers = Handlers(cfg, self.registry, self.stages, self.events, self.reply)
        self.stages.worker_down = self.handlers.worker_down

    def run(self) -> int:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        try:
            self._open()
            self._loop()
        finally:
            self._shutdown()
        return self.exit_code

    def _on_signal(self, signum: int, frame: object) -> None:
        self.stopping = True

    def _open(self) -> None:
        if self.cfg.metrics_port:
            try:
                self.http = serve_metrics(self.cfg.metrics_port, self.metrics.registry, self.stages.children.down_now)
            except OSError as exc:
                raise UserError(f"cannot serve metrics on 127.0.0.1:{self.cfg.metrics_port}: {exc.strerror}; "
                                "pick another metrics_port") from None
            log("supervisor", f"metrics on http://127.0.0.1:{self.cfg.metrics_port}/metrics")
        if self.cfg.role == "capture":
            self.stages.start_captures()
            return
        self.control = self.ctx.socket(zmq.ROUTER)
        self.control.linger = 0
        self.control.maxmsgsize = MAX_REQUEST_BYTES  # ZeroMQ drops a peer that sends more
        self.security.bind(self.control, control_endpoint(self.cfg))
        log("supervisor", f"control on {bound_endpoint(self.control)}")
        if self.cfg.console:
            from .console.link import CONTROL, Console  # the HTTP server and its files: only when asked for
            self.control.bind(CONTROL)  # the console's requests reach the same handlers as ctl's
            self.console = Console(self.cfg.console, self.ctx, self.events, self.metrics.registry,
                                   self.stages.console_watching, self.stages.console_frames)
        self.link = ZmqSupervisorLink(self.security, self.launcher.supervisor_endpoint("events"))
        self.stages.events_endpoint = self.link.endpoint
        self.stages.start()

    def _loop(self) -> None:
        poller = zmq.Poller()
        for sock in (self.control, self.link and self.link.pollable):
            if sock is not None:
                poller.register(sock, zmq.POLLIN)
        summary = SummaryLine(self.metrics.registry) if self.cfg.log_interval_s else None
        next_summary = time.monotonic() + self.cfg.log_interval_s
        while not self.stopping:
            if poller.sockets:
                ready = dict(poller.poll(100))
            else:  # role capture: no sockets, only children to watch
                ready = {}
                time.sleep(0.1)
            # events first: requests of this turn are answered from a registry that has them
            if self.link is not None and self.link.pollable in ready:
                for event, pixels in self.link.events():
                    child = self.stages.children.by_generation(event.generation)  # None: a process since replaced
                    if child is not None:
                        self.handlers.event(child, event, pixels)
            if self.control in ready:
                for _ in range(REQUESTS_PER_TURN):
                    if not self.control.poll(0):
                        break
                    frames = self.control.recv_multipart()
                    reply = self.handlers.request(frames)
                    if reply is not None:
                        self.reply(frames[:-1], reply)
            self.stages.look_after()
            self.handlers.expire()
            if self.stages.children.fatal:
                self.exit_code = FATAL
                break
            if summary and time.monotonic() >= next_summary:
                log("summary", summary.line(self.registry.paused()))
                next_summary += self.cfg.log_interval_s
            streams = self.registry.streams.values()
            if streams and all(s.done for s in streams):
                log("supervisor", "every stream has ended; stopping")
                if all(s.state == "failed" for s in streams):
                    self.exit_code = FATAL
                break

    def reply(self, envelope: list[bytes], reply: bytes) -> None:
        self.control.send_multipart([*envelope, reply])

    def _shutdown(self) -> None:
        if self.console is not None:
            self.console.close()
        self.stages.children.stop_all()
        for sock in (self.control, self.link):
            if sock is not None:
                sock.close()
        self.security.close()
        self.ctx.term()
        self.launcher.close()
        if self.http is not None:
            self.http.shutdown()
            self.http.server_close()
        stop_resource_tracker()
        log("supervisor", "stopped")
