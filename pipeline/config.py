"""`siammask serve` configuration: frozen dataclasses read from YAML (unknown keys are errors),
command-line overrides, and the checks that must pass before any process starts."""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from siammask.config import from_dict, load_yaml
from siammask.errors import UserError
from siammask.io.results import VideoWriter

from .endpoints import check_bind_endpoint, check_connect_endpoint


@dataclass(frozen=True)
class StreamConfig:
    """One source and the targets to start on its first frame."""

    id: str
    source: str | None = None          # video file, image folder, camera index or rtsp/http URL
    boxes: tuple[tuple[float, ...], ...] = ()  # x, y, w, h in the first frame
    loop: bool = False                 # files and folders: start again at the end
    fps: float | None = None           # files and folders are played at this rate (default: their own, or 25)
    endpoint: str | None = None        # where the capture process binds (default: private ipc); tcp:// for
                                       # inference on another host
    remote: bool = False               # frames come from `siammask serve --role capture` at `endpoint`


@dataclass(frozen=True)
class ModelConfig:
    """What `siammask track` takes as --weights, --variant, --hp, --engine, --device, --precision."""

    weights: str | None = None
    variant: str | None = None
    hp: str | None = None
    engine: str = "torch"
    device: str = "cpu"
    precision: str | None = None
    threads: int | None = None         # torch intra-op threads in the inference process (default: torch's)


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
class PipelineConfig:
    """Everything `siammask serve` runs; see configs/pipeline/example.yaml."""

    streams: tuple[StreamConfig, ...] = ()
    model: ModelConfig = ModelConfig()
    publish: str = "tcp://127.0.0.1:5556"   # ZeroMQ PUB: one JSON message per processed frame
    control: str = "tcp://127.0.0.1:5557"   # ZeroMQ ROUTER for `siammask ctl`
    metrics_port: int | None = 9557         # Prometheus on 127.0.0.1; 0 or null: off
    preview_port: int | None = None         # MJPEG preview page on 127.0.0.1; 0 or null: off
    outputs: OutputsConfig = OutputsConfig()
    curve: CurveConfig | None = None
    role: str = "all"                       # all, or capture: only the capture processes (near the cameras)
    queue_size: int = 2                     # ZeroMQ high-water marks between stages, in messages
    open_timeout_s: float = 10.0
    read_timeout_s: float = 10.0
    log_interval_s: float = 10.0            # one summary line per interval; 0: off
    inference_delay_ms: float = 0.0         # testing: make the inference stage this much slower per batch


ROLES = ("all", "capture")


def load_config(path: str | None) -> PipelineConfig:
    """The YAML file, or the defaults when there is none."""
    return load_yaml(PipelineConfig, path) if path else PipelineConfig()


def stream_from_dict(data: dict, curve: CurveConfig | None) -> StreamConfig:
    """A stream as `siammask ctl add-stream` sends it, checked like one in the config file."""
    stream = from_dict(StreamConfig, data, "stream")
    check_stream(stream, curve)
    return stream


def apply_cli(cfg: PipelineConfig, args: argparse.Namespace) -> PipelineConfig:
    """Command-line values win over the file; --source/--box replace the file's streams."""
    model = dataclasses.replace(cfg.model, **{k: getattr(args, k) for k in (
        "weights", "variant", "hp", "engine", "device", "precision", "threads") if getattr(args, k) is not None})
    outputs = dataclasses.replace(cfg.outputs, **{k: v for k, v in (("jsonl", args.json), ("video", args.output))
                                                  if v is not None})
    top = {k: getattr(args, k) for k in ("publish", "control", "metrics_port", "preview_port", "role",
                                         "inference_delay_ms") if getattr(args, k) is not None}
    streams = cfg.streams
    if args.source is not None:
        streams = (StreamConfig(id=args.stream_id, source=args.source, boxes=tuple(args.box or ()),
                                loop=args.loop, fps=args.fps),)
    elif args.box:
        raise UserError("--box needs --source (boxes of configured streams go in the config file)")
    return dataclasses.replace(cfg, model=model, outputs=outputs, streams=streams, **top)


def check_config(cfg: PipelineConfig) -> None:
    """Every mistake a user can make in the config, as one UserError, before anything starts."""
    if cfg.role not in ROLES:
        raise UserError(f"role '{cfg.role}' is not one of {', '.join(ROLES)}")
    if cfg.queue_size < 1:
        raise UserError(f"queue_size must be at least 1, got {cfg.queue_size}")
    ids = [s.id for s in cfg.streams]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise UserError(f"stream id(s) {', '.join(duplicates)} used more than once; give each stream its own id")
    endpoints = [e for e in (cfg.publish, cfg.control, *(s.endpoint for s in cfg.streams if not s.remote)) if e]
    if len(endpoints) != len(set(endpoints)):
        raise UserError(f"endpoints {', '.join(endpoints)} must all differ: two sockets cannot bind one address")
    for stream in cfg.streams:
        check_stream(stream, cfg.curve)
        if cfg.role == "capture" and (stream.remote or not (stream.endpoint or "").startswith("tcp://")):
            raise UserError(f"stream '{stream.id}': with role capture every stream needs a source and a "
                            "tcp:// endpoint for the inference host to connect to")
    if cfg.role == "all":
        check_bind_endpoint(cfg.publish, "publish", cfg.curve)
        check_bind_endpoint(cfg.control, "control", cfg.curve)
        if cfg.model.weights and not Path(cfg.model.weights).exists():
            raise UserError(f"weights '{cfg.model.weights}' not found; pass a .pth checkpoint or an export folder")
    for name in ("metrics_port", "preview_port"):
        port = getattr(cfg, name)
        if port is not None and not 0 <= port < 65536:
            raise UserError(f"{name} {port} is not a TCP port (1-65535; 0 or null: off)")
    check_outputs(cfg.outputs, [s.id for s in cfg.streams])
    if cfg.curve:
        for name in ("server_key", "client_key"):
            if not Path(getattr(cfg.curve, name)).is_file():
                raise UserError(f"curve.{name} '{getattr(cfg.curve, name)}' not found; make keys with "
                                "'siammask keys --out DIR'")
        if not Path(cfg.curve.authorized_keys).is_dir():
            raise UserError(f"curve.authorized_keys '{cfg.curve.authorized_keys}' is not a folder of public keys")


def check_outputs(outputs: OutputsConfig, stream_ids: list[str]) -> None:
    """Output paths fail here, not in the sink process after the streams have started."""
    if outputs.jsonl and not Path(outputs.jsonl).parent.is_dir():
        raise UserError(f"outputs.jsonl '{outputs.jsonl}': folder '{Path(outputs.jsonl).parent}' does not exist")
    if outputs.video:
        if len(stream_ids) > 1 and "{stream}" not in outputs.video:
            raise UserError(f"outputs.video '{outputs.video}' needs '{{stream}}' in its name for several streams")
        for stream_id in stream_ids or ["0"]:
            VideoWriter(outputs.video.format(stream=stream_id))  # checks the suffix and folder; opens nothing


def check_stream(stream: StreamConfig, curve: CurveConfig | None) -> None:
    """A stream's own fields: an id, a source or a remote endpoint, four numbers per box."""
    if not stream.id or "/" in stream.id:
        raise UserError(f"stream id '{stream.id}' must be non-empty and without '/'")
    if stream.remote:
        if not stream.endpoint:
            raise UserError(f"stream '{stream.id}' is remote but has no endpoint to connect to")
        check_connect_endpoint(stream.endpoint, f"stream '{stream.id}' endpoint")
    elif not stream.source:
        raise UserError(f"stream '{stream.id}' has no source; give a video file, image folder, camera or URL")
    elif "://" not in stream.source and not stream.source.isdigit() and not Path(stream.source).expanduser().exists():
        raise UserError(f"stream '{stream.id}': source '{stream.source}' not found; give a video file, image folder, "
                        "camera index or URL")
    if stream.endpoint and not stream.remote:
        check_bind_endpoint(stream.endpoint, f"stream '{stream.id}' endpoint", curve)
    for box in stream.boxes:
        if len(box) != 4:
            raise UserError(f"stream '{stream.id}': box {list(box)} must have 4 numbers: x, y, w, h")
    if stream.fps is not None and not stream.fps > 0:
        raise UserError(f"stream '{stream.id}': fps must be positive, got {stream.fps}")
