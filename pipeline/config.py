"""`siammask serve` configuration: frozen dataclasses read from YAML (unknown keys are errors),
command-line overrides, and the checks that must pass before any process starts."""
from __future__ import annotations

import argparse
import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

from siammask.config import Range, check_ranges, from_dict, load_yaml, ranged
from siammask.engines.names import AUTO, check_engine
from siammask.errors import UserError
from siammask.validate import box_in_frame, box_values

from .endpoints import (check_bind_endpoint, check_connect_endpoint, check_control_endpoint, check_stream_endpoint,
                        default_control, is_loopback_host)


@dataclass(frozen=True)
class StreamConfig:
    """One source and the targets to start on its first frame."""

    id: str
    source: str | None = None          # video file, image folder, camera index or rtsp/http URL
    boxes: tuple[tuple[float, ...], ...] = ()  # x, y, w, h in the first frame
    loop: bool = False                 # files and folders: start again at the end
    fps: float | None = ranged(0.0, 1000.0, None, lo_open=True)  # files and folders are played at this rate
                                       # (default: their own, or 25)
    endpoint: str | None = None        # where the capture process binds (default: private ipc); tcp:// for
                                       # inference on another host; an ipc:// path only in the private folder
    remote: bool = False               # frames come from `siammask serve --role capture` at `endpoint`
    resources: dict[str, float] = field(default_factory=dict, metadata={"range": Range(0.0, 1e6, lo_open=True)})
                                       # cluster mode: Ray custom resources the capture needs ({camhost1: 1}
                                       # runs it on the node started with that resource)


@dataclass(frozen=True)
class ModelConfig:
    """What `siammask track` takes as --weights, --variant, --hp, --engine, --device, --precision."""

    weights: str | None = None
    variant: str | None = None
    hp: str | None = None
    engine: str = AUTO
    device: str = "cpu"
    precision: str | None = None
    redetect: bool | None = None  # None: as the hyper-parameters say
    threads: int | None = ranged(1, 256, None)  # inference threads, torch and ONNX Runtime (siammask.threads)
    spin: bool = False  # ONNX Runtime's threads spin within a run: faster only where no capture process needs the cores

    def __post_init__(self) -> None:
        check_engine(self.engine, "engine")  # at load: not first when the inference process starts


@dataclass(frozen=True)
class OutputsConfig:
    """Optional files; `video` needs a '{stream}' in its name when there are several streams."""

    jsonl: str | None = None
    video: str | None = None


@dataclass(frozen=True)
class CurveConfig:
    """ZeroMQ CURVE key files made by `siammask keys`; needed to bind beyond loopback."""

    server_key: str                    # server.key_secret to bind; server.key (public) is enough to connect
    client_key: str                    # client.key_secret: how this pipeline's own clients authenticate
    authorized_keys: str               # folder of public keys of clients that may connect


@dataclass(frozen=True)
class ConsoleConfig:
    """The operator's console in the browser (pipeline/console/): where it listens, and the token
    every request needs (a random one, printed with the URL at start, when none is given)."""

    listen: str | int = "127.0.0.1:8080"   # [HOST:]PORT (host 127.0.0.1 when left out); port 0: a free one
    token: str | None = None               # 16 to 256 URL-safe characters; required beyond loopback


@dataclass(frozen=True)
class WorkerConfig:
    """Cluster mode: what each inference worker (a Ray actor) asks of its node, and how many streams
    it holds; serve starts as many workers as its streams need."""

    num_cpus: float = ranged(0.0, 1024.0, 1.0)
    num_gpus: float = ranged(0.0, 64.0, 0.0)
    max_streams: int = ranged(1, 256, 8)


@dataclass(frozen=True)
class PipelineConfig:
    """Everything `siammask serve` runs; see configs/pipeline/example.yaml."""

    streams: tuple[StreamConfig, ...] = ()
    model: ModelConfig = ModelConfig()
    publish: str = "tcp://127.0.0.1:5556"   # ZeroMQ PUB: one JSON message per processed frame
    control: str | None = None              # ZeroMQ ROUTER for `siammask ctl`; null: ipc socket in this user's
                                            # private folder (see control_endpoint); tcp:// only with curve
    metrics_port: int | None = ranged(0, 65535, 9557)   # Prometheus on 127.0.0.1; 0 or null: off
    preview_port: int | None = ranged(0, 65535, None)   # MJPEG preview page on 127.0.0.1; 0 or null: off
    console: ConsoleConfig | None = None    # the operator's console (HTTP); null: off
    outputs: OutputsConfig = OutputsConfig()
    curve: CurveConfig | None = None
    capture_endpoints: tuple[str, ...] = ()  # tcp:// endpoints of capture hosts that `ctl add-stream` may name
                                            # as a stream's endpoint (the config's own streams' count too)
    role: str = "all"                       # all, or capture: only the capture processes (near the cameras)
    queue_size: int = ranged(1, 1000, 2)    # ZeroMQ high-water marks between stages, in messages
    max_streams: int = ranged(1, 256, 16)   # streams at once (config and ctl); the inference -> sink queue
                                            # holds queue_size + max_streams results: one full batch more
    max_targets: int = ranged(1, 256, 16)   # targets per stream
    open_timeout_s: float = ranged(0.0, 3600.0, 10.0, lo_open=True)
    read_timeout_s: float = ranged(0.0, 3600.0, 10.0, lo_open=True)
    log_interval_s: float = ranged(0.0, 86400.0, 10.0)  # one summary line per interval; 0: off
    inference_delay_ms: float = ranged(0.0, 10000.0, 0.0)  # testing: make the inference stage this much
                                                           # slower per batch
    cluster: str | None = None              # ray: start a local Ray cluster; HOST:PORT, ray://HOST:PORT or auto:
                                            # join one (see pipeline/README.md); null: plain processes
    worker: WorkerConfig = WorkerConfig()   # cluster mode only


ROLES = ("all", "capture")
MAX_ID_CHARS = 64
TOKEN = re.compile(r"[A-Za-z0-9._~+/=-]{16,256}")  # fits a URL, a cookie and a header unescaped


def load_config(path: str | None) -> PipelineConfig:
    """The YAML file, or the defaults when there is none."""
    return load_yaml(PipelineConfig, path) if path else PipelineConfig()


def control_endpoint(cfg: PipelineConfig) -> str:
    """Where serve answers `siammask ctl`: the config's endpoint, else this user's private socket."""
    return cfg.control or default_control()


def stream_from_dict(data: dict, cfg: PipelineConfig) -> StreamConfig:
    """A stream as `siammask ctl add-stream` sends it, checked like one in the config file; a tcp://
    endpoint only when the operator configured it (a control client must not make serve connect to,
    or bind, any address it names)."""
    stream = from_dict(StreamConfig, data, "stream")
    check_stream(stream, cfg)
    configured = {*cfg.capture_endpoints, *(s.endpoint for s in cfg.streams if s.endpoint)}
    if stream.endpoint and stream.endpoint.startswith("tcp://") and stream.endpoint not in configured:
        raise UserError(f"stream '{stream.id}' endpoint '{stream.endpoint}' is not a capture host's endpoint in "
                        "serve's config; add it to capture_endpoints there (or use an ipc:// path in serve's "
                        "private folder)")
    return stream


def apply_cli(cfg: PipelineConfig, args: argparse.Namespace) -> PipelineConfig:
    """Command-line values win over the file; --source/--box replace the file's streams."""
    model = dataclasses.replace(cfg.model, **{k: getattr(args, k) for k in (
        "weights", "variant", "hp", "engine", "device", "precision", "redetect", "threads")
        if getattr(args, k) is not None})
    outputs = dataclasses.replace(cfg.outputs, **{k: v for k, v in (("jsonl", args.json), ("video", args.output))
                                                  if v is not None})
    top = {k: getattr(args, k) for k in ("publish", "control", "metrics_port", "preview_port", "role",
                                         "inference_delay_ms", "cluster") if getattr(args, k) is not None}
    if args.console is not None:  # the config's token stays
        top["console"] = ConsoleConfig(listen=args.console, token=cfg.console.token if cfg.console else None)
    streams = cfg.streams
    if args.source is not None:
        streams = (StreamConfig(id=args.stream_id, source=args.source, boxes=tuple(args.box or ()),
                                loop=args.loop, fps=args.fps),)
    elif args.box:
        raise UserError("--box needs --source (boxes of configured streams go in the config file)")
    return dataclasses.replace(cfg, model=model, outputs=outputs, streams=streams, **top)


def check_config(cfg: PipelineConfig) -> None:
    """Every mistake a user can make in the config, as one UserError, before anything starts."""
    check_ranges(cfg)  # command-line values never went through from_dict
    if cfg.role not in ROLES:
        raise UserError(f"role '{cfg.role}' is not one of {', '.join(ROLES)}")
    check_cluster(cfg)
    if len(cfg.streams) > cfg.max_streams:
        raise UserError(f"{len(cfg.streams)} streams but max_streams is {cfg.max_streams}; raise max_streams")
    ids = [s.id for s in cfg.streams]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise UserError(f"stream id(s) {', '.join(duplicates)} used more than once; give each stream its own id")
    endpoints = [e for e in (cfg.publish, cfg.control, *(s.endpoint for s in cfg.streams if not s.remote))
                 if e and not e.endswith(":*")]  # port '*': ZeroMQ gives each its own free port
    if len(endpoints) != len(set(endpoints)):
        raise UserError(f"endpoints {', '.join(endpoints)} must all differ: two sockets cannot bind one address")
    for endpoint in cfg.capture_endpoints:
        check_connect_endpoint(endpoint, "capture_endpoints entry")
        if not endpoint.startswith("tcp://"):
            raise UserError(f"capture_endpoints entry '{endpoint}' is not tcp://HOST:PORT; ipc:// stream endpoints "
                            "need no entry (they must be in serve's private folder)")
    for stream in cfg.streams:
        check_stream(stream, cfg)
        if cfg.role == "capture" and (stream.remote or not (stream.endpoint or "").startswith("tcp://")):
            raise UserError(f"stream '{stream.id}': with role capture every stream needs a source and a "
                            "tcp:// endpoint for the inference host to connect to")
    if cfg.role == "all":
        check_bind_endpoint(cfg.publish, "publish", cfg.curve)
        check_control_endpoint(cfg.control, cfg.curve)
        if cfg.model.weights and not Path(cfg.model.weights).exists():
            raise UserError(f"weights '{cfg.model.weights}' not found; pass a .pth checkpoint or an export folder")
    check_outputs(cfg.outputs, [s.id for s in cfg.streams])
    if cfg.console:
        if cfg.role != "all":
            raise UserError("console: is for the serve that runs the inference (role all), not a capture host")
        console_address(cfg.console)
    if cfg.curve:
        for name in ("server_key", "client_key"):
            if not Path(getattr(cfg.curve, name)).is_file():
                raise UserError(f"curve.{name} '{getattr(cfg.curve, name)}' not found; make keys with "
                                "'siammask keys --out DIR'")
        if not Path(cfg.curve.authorized_keys).is_dir():
            raise UserError(f"curve.authorized_keys '{cfg.curve.authorized_keys}' is not a folder of public keys")


def console_address(console: ConsoleConfig) -> tuple[str, int]:
    """(host, port) of `listen`; a console reachable beyond loopback only with a configured token
    (a random one printed on a terminal would be the only lock on a camera network's controls)."""
    listen = str(console.listen)
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535 or not re.fullmatch(r"[A-Za-z0-9.:-]+", host):
        raise UserError(f"console '{listen[:80]}' is not [HOST:]PORT with a port from 0 to 65535 "
                        "(e.g. 8080 or 127.0.0.1:8080)")
    if console.token is not None and not TOKEN.fullmatch(console.token):
        raise UserError("console token must be 16 to 256 characters of A-Z a-z 0-9 . _ ~ + / = -")
    if console.token is None and not is_loopback_host(host):
        raise UserError(f"console on '{host}' is reachable from other machines; set a token in the config "
                        "(console: {listen: ..., token: ...}) or listen on 127.0.0.1")
    return host, int(port)


def check_cluster(cfg: PipelineConfig) -> None:
    """The cluster address, and the settings that only mean something on a cluster."""
    if cfg.cluster is None:
        if cfg.worker != WorkerConfig():
            raise UserError("worker: is for cluster mode; add --cluster ray (or cluster: in the config)")
        return
    address = re.fullmatch(r"(?:ray://)?[A-Za-z0-9.-]+:(\d{1,5})", cfg.cluster)
    if cfg.cluster not in ("ray", "auto") and not (address and 0 < int(address.group(1)) < 65536):
        raise UserError(f"cluster '{cfg.cluster}' is not 'ray' (start one here), 'auto', HOST:PORT or "
                        "ray://HOST:PORT")
    if cfg.role != "all":
        raise UserError("role capture runs no inference; a cluster is for the serve that does (role all)")


def check_outputs(outputs: OutputsConfig, stream_ids: list[str]) -> None:
    """Output paths fail here, not in the sink process after the streams have started."""
    from siammask.io.results import VideoWriter  # OpenCV: not for `siammask ctl`, which reads this module too

    if outputs.jsonl and not Path(outputs.jsonl).parent.is_dir():
        raise UserError(f"outputs.jsonl '{outputs.jsonl}': folder '{Path(outputs.jsonl).parent}' does not exist")
    if outputs.video:
        if len(stream_ids) > 1 and "{stream}" not in outputs.video:
            raise UserError(f"outputs.video '{outputs.video}' needs '{{stream}}' in its name for several streams")
        for stream_id in stream_ids or ["0"]:
            VideoWriter(outputs.video.format(stream=stream_id))  # checks the suffix and folder; opens nothing


def check_stream(stream: StreamConfig, cfg: PipelineConfig) -> None:
    """A stream's own fields: an id, a source or a remote endpoint, boxes that fit its first frame
    (files and folders are opened to see it; a live source's boxes are checked on its first frame)."""
    from siammask.io.sources import first_frame_size  # OpenCV, as in check_outputs

    if not stream.id or "/" in stream.id or len(stream.id) > MAX_ID_CHARS or not stream.id.isprintable():
        raise UserError(f"stream id {stream.id[:MAX_ID_CHARS]!r} must be 1 to {MAX_ID_CHARS} printable characters "
                        "without '/'")
    if stream.resources and cfg.cluster is None:
        raise UserError(f"stream '{stream.id}' asks for Ray resources; they need --cluster ray (or cluster: in the "
                        "config)")
    if stream.remote and cfg.cluster is not None:
        raise UserError(f"stream '{stream.id}' is a remote capture; in cluster mode pin its capture to the camera's "
                        "host with resources: instead")
    if stream.endpoint and cfg.cluster is not None:
        raise UserError(f"stream '{stream.id}' has an endpoint; in cluster mode serve binds each capture on its "
                        "node's address itself")
    if stream.remote:
        if not stream.endpoint:
            raise UserError(f"stream '{stream.id}' is remote but has no endpoint to connect to")
        check_connect_endpoint(stream.endpoint, f"stream '{stream.id}' endpoint")
    elif not stream.source:
        raise UserError(f"stream '{stream.id}' has no source; give a video file, image folder, camera or URL")
    elif "://" not in stream.source and not stream.source.isdigit():
        where = Path(stream.source).expanduser()
        if not where.exists():
            raise UserError(f"stream '{stream.id}': source '{stream.source}' not found; give a video file, image "
                            "folder, camera index or URL")
        if not (where.is_file() or where.is_dir() or where.is_fifo()):  # what open_source reads, as `track`
            raise UserError(f"stream '{stream.id}': source '{stream.source}' is not a video file, image folder or "
                            "named pipe; give one of those, a camera index or a URL")
    if stream.endpoint:
        check_stream_endpoint(stream.endpoint, f"stream '{stream.id}' endpoint")
    if stream.endpoint and not stream.remote:
        check_bind_endpoint(stream.endpoint, f"stream '{stream.id}' endpoint", cfg.curve)
        check_connect_endpoint(stream.endpoint, f"stream '{stream.id}' endpoint")  # the inference stage connects
    if len(stream.boxes) > cfg.max_targets:
        raise UserError(f"stream '{stream.id}' has {len(stream.boxes)} boxes but max_targets is {cfg.max_targets}")
    for box in stream.boxes:
        box_values(box, f"stream '{stream.id}': box")
    where = None if stream.remote else Path(stream.source).expanduser()
    if stream.boxes and where is not None and (where.is_file() or where.is_dir()):
        size = first_frame_size(stream.source)
        for box in stream.boxes:
            box_in_frame(box, size, f"stream '{stream.id}': box")
