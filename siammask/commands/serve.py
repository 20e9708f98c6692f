"""`siammask serve`: track many streams and targets in real time and publish every result
(ZeroMQ, JSON lines, video, live preview), controlled at run time with `siammask ctl`."""
from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from ..errors import UserError
from ..validate import box_text
from .common import add_model_options

if TYPE_CHECKING:  # the pipeline is imported when serve runs, not when the CLI starts
    from siammask.pipeline.config import PipelineConfig
    from siammask.pipeline.endpoints import RunDir


def run(args: argparse.Namespace) -> int:
    from siammask.pipeline.config import apply_cli, check_config, load_config
    from siammask.pipeline.endpoints import RunDir

    cfg = apply_cli(load_config(args.config), args)
    check_config(cfg)
    run_dir = RunDir()
    try:
        # prometheus-client's multiprocess mode: every stage writes here; must precede its import.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(run_dir.sub("metrics"))
        from siammask.pipeline.supervisor import Supervisor

        if cfg.cluster is None:
            return Supervisor(cfg, run_dir).run()
        return _run_on_cluster(cfg, run_dir)
    finally:
        run_dir.remove()


# Ray takes 127.0.0.1 as the node address, and then binds its GCS, raylets and workers to loopback
# only, when it thinks it runs where clusters are off (its setting for macOS and Windows); read when
# Ray is imported. A cluster that `--cluster ray` starts here is this machine alone.
RAY_LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def _run_on_cluster(cfg: PipelineConfig, run_dir: RunDir) -> int:
    """The same supervisor, its stages placed by Ray; a cluster started here stops with serve."""
    if cfg.cluster == "ray":
        os.environ.update(RAY_LOOPBACK_ENV)
    try:
        from siammask.pipeline import cluster
    except ImportError as exc:
        raise UserError(f"--cluster needs Ray ({exc.name} is not installed): pip install 'siammask[cluster]'") from None
    address = cluster.connect(cfg.cluster)
    try:
        from siammask.pipeline.supervisor import Supervisor

        return Supervisor(cfg, run_dir, cluster.RayLauncher(run_dir, cfg, address)).run()
    finally:
        cluster.disconnect()


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="track live streams and publish results (ZeroMQ, metrics, preview)")
    p.add_argument("--config", help="pipeline YAML (see configs/pipeline/example.yaml); options below override it")
    p.add_argument("--source", help="one stream: video file, image folder, camera index or rtsp:// / http:// URL "
                                    "(replaces the config's streams)")
    p.add_argument("--box", action="append", type=box_text, help="target on the first frame of --source as "
                                                                  "X,Y,W,H; repeat for several")
    p.add_argument("--stream-id", default="0", help="id of the --source stream in results (default: 0)")
    p.add_argument("--loop", action="store_true", help="play a --source file or folder again at its end")
    p.add_argument("--fps", type=float, help="rate to play a --source file or folder at (default: its own)")
    p.add_argument("--publish", help="ZeroMQ PUB endpoint for results (default: tcp://127.0.0.1:5556)")
    p.add_argument("--control", help="ZeroMQ endpoint for 'siammask ctl' (default: an ipc socket in this user's "
                                     "private folder; tcp:// needs CURVE keys)")
    p.add_argument("--metrics-port", type=int, help="Prometheus metrics on 127.0.0.1:PORT (default: 9557)")
    p.add_argument("--preview-port", type=int, help="live MJPEG preview page on 127.0.0.1:PORT (default: off)")
    p.add_argument("--console", metavar="[HOST:]PORT", help="the operator's console in the browser on HOST:PORT "
                   "(host 127.0.0.1 unless given; its URL with a fresh access token is printed at start)")
    p.add_argument("--json", help="JSON-lines file: the published message of every processed frame")
    p.add_argument("--output", help="annotated video ('{stream}' in the name for several streams)")
    p.add_argument("--role", choices=["all", "capture"], help="capture: run only the capture processes, for "
                                                              "inference on another host")
    p.add_argument("--cluster", help="run on Ray: 'ray' starts a cluster on this machine, HOST:PORT, "
                   "ray://HOST:PORT or 'auto' joins one (pip install 'siammask[cluster]')")
    p.add_argument("--threads", type=int, help="inference threads (torch and ONNX Runtime) in the inference process")
    p.add_argument("--inference-delay-ms", type=float, help=argparse.SUPPRESS)  # tests: a slow stage
    add_model_options(p)
    p.set_defaults(func=run, engine=None, device=None)  # None: the config (or its default) decides
