"""`siammask keys`: make the CURVE key pairs that `siammask serve` needs to listen beyond loopback."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def run(args: argparse.Namespace) -> int:
    from siammask.pipeline.security import write_keys

    for path in write_keys(Path(args.out)):
        print(path)
    print(f"siammask: keys in '{args.out}': give the server 'server.key_secret', clients 'server.key' and their "
          "own '*.key_secret'; put each allowed client's public '.key' in 'authorized/'", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keys", help="make ZeroMQ CURVE keys for serve and ctl")
    p.add_argument("--out", required=True, help="folder to create the key files in")
    p.set_defaults(func=run)
