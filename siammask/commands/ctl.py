"""`siammask ctl`: add, remove and list targets and streams, pause and resume, while serve runs."""
from __future__ import annotations

import argparse
import json

from ..errors import UserError
from ..validate import box_text, seconds_text


def _payload(args: argparse.Namespace) -> dict:
    if args.action == "list":
        return {"cmd": "list"}
    if args.action == "add-target":
        return {"cmd": "add_target", "stream": args.stream, "box": list(args.box)}
    if args.action == "remove-target":
        return {"cmd": "remove_target", "stream": args.stream, "target": args.target}
    if args.action == "add-stream":
        stream = {"id": args.stream, "source": args.source, "boxes": [list(b) for b in args.box or ()],
                  "loop": args.loop}
        return {"cmd": "add_stream", "stream": stream}
    return {"cmd": args.action.replace("-", "_"), "stream": args.stream}


def run(args: argparse.Namespace) -> int:
    from siammask.pipeline.config import control_endpoint, load_config
    from siammask.pipeline.control import request
    from siammask.pipeline.security import load_keys

    cfg = load_config(args.config)
    endpoint = args.control or control_endpoint(cfg)
    keys = load_keys(cfg.curve) if cfg.curve else None
    reply = request(endpoint, _payload(args), keys, args.timeout)
    if not reply.get("ok"):
        raise UserError(reply.get("error", "request refused"))
    print(json.dumps(reply, indent=2))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ctl", help="control a running 'siammask serve'")
    p.add_argument("--config", help="the serve config: its control endpoint and CURVE keys")
    p.add_argument("--control", help="control endpoint (default: the config's, else the ipc socket that "
                                        "serve opens in this user's private folder)")
    p.add_argument("--timeout", type=lambda text: seconds_text(text, "--timeout"), default=10.0,
                   help="seconds to wait for the reply (default: 10)")
    actions = p.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="streams, targets and stage processes")
    for name in ("pause", "resume", "remove-stream"):
        actions.add_parser(name, help=f"{name.replace('-', ' ')} a stream").add_argument("stream")
    add = actions.add_parser("add-target", help="start a target on the stream's newest frame")
    add.add_argument("stream")
    add.add_argument("box", type=box_text, help="X,Y,W,H in pixels")
    remove = actions.add_parser("remove-target", help="stop tracking a target")
    remove.add_argument("stream")
    remove.add_argument("target", type=int)
    stream = actions.add_parser("add-stream", help="start a new stream")
    stream.add_argument("stream", help="its id")
    stream.add_argument("source", help="video file, image folder, camera index or URL")
    stream.add_argument("--box", action="append", type=box_text, help="X,Y,W,H on its first frame; repeatable")
    stream.add_argument("--loop", action="store_true", help="play a file or folder again at its end")
    p.set_defaults(func=run)
