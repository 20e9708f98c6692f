"""The `siammask` command. Each subcommand lives in siammask/commands/ and registers itself; a
UserError becomes one line on stderr and exit status 2, never a traceback."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .errors import UserError

# One module per subcommand, each with register(subparsers).
COMMAND_MODULES = (
    "siammask.commands.track",
    "siammask.commands.export",
    "siammask.commands.bench",
    "siammask.commands.dataset",
    "siammask.commands.eval",
    "siammask.commands.train",
    "siammask.commands.demo",
    "siammask.commands.serve",
    "siammask.commands.ctl",
    "siammask.commands.keys",
)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="siammask", description="Real-time object tracking and segmentation")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


class _LineFormatter(logging.Formatter):
    """Library warnings on stderr as one line each, like our errors: 'siammask: warning: ...'."""

    def format(self, record: logging.LogRecord) -> str:
        return f"siammask: {record.levelname.lower()}: {record.getMessage()}"


def main(argv: list[str] | None = None) -> int:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LineFormatter())
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    try:
        args = make_parser().parse_args(argv)  # a bad box is a UserError from its argparse type
        return args.func(args)
    except UserError as exc:
        print(f"siammask: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before a command's own loop took over Ctrl-C (imports, loading)
        print("siammask: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
