"""The `siammask` command. Each subcommand lives in siammask/commands/ and registers itself; a
UserError becomes one line on stderr and exit status 2, never a traceback. The command sets up
logging for the library (-q/--quiet, -v/--verbose, before or after the subcommand)."""
from __future__ import annotations

import argparse
import importlib
import sys

from .errors import UserError
from .extras import EXTRAS, missing
from .logs import configure, level_for
from .threads import single_threaded_blas

# Each subcommand's module, with register(subparsers), in the order `siammask --help` lists them.
COMMANDS = {
    "track": "siammask.commands.track",
    "export": "siammask.commands.export",
    "bench": "siammask.commands.bench",
    "dataset": "siammask.commands.dataset",
    "eval": "siammask.commands.eval",
    "train": "siammask.commands.train",
    "demo": "siammask.commands.demo",
    "serve": "siammask.commands.serve",
    "ctl": "siammask.commands.ctl",
    "keys": "siammask.commands.keys",
    "fit-presence": "siammask.commands.presence",
}


def _add_global_flags(parser: argparse.ArgumentParser, top: bool) -> None:
    """On the top parser with their defaults; on every subcommand with none, so that a flag given
    before the subcommand is not reset by the subcommand's parser."""
    default = {} if top else {"default": argparse.SUPPRESS}
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars; warnings and errors only",
                        **({"default": False} if top else default))
    parser.add_argument("-v", "--verbose", action="count", help="debug messages too",
                        **({"default": 0} if top else default))
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                _add_global_flags(child, top=False)


def make_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every subcommand, or of `command` alone: building all of them imports eleven
    modules (~35 ms of every start; the first result of `track` takes ~0.4 s on 2 cores)."""
    parser = argparse.ArgumentParser(prog="siammask", description="Real-time object tracking and segmentation")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module in COMMANDS.items():
        if command in (None, name):
            importlib.import_module(module).register(sub)
    _add_global_flags(parser, top=True)
    return parser


def _command_named(argv: list[str]) -> str | None:
    """The subcommand `argv` runs, when only its parser is needed: None for a missing or unknown
    command and for help asked before it (argparse then lists every command)."""
    for word in argv:
        if word in ("-h", "--help"):
            return None
        if not word.startswith("-"):  # the global flags before a command (-q, -v) take no value
            return word if word in COMMANDS else None
    return None


def main(argv: list[str] | None = None) -> int:
    single_threaded_blas()  # before a command imports numpy (the parser does not); serve's stages inherit it
    command = "siammask"
    try:
        argv = sys.argv[1:] if argv is None else argv
        args = make_parser(_command_named(argv)).parse_args(argv)  # a bad box is a UserError
        command = f"'siammask {args.command}'"
        configure(level_for(args.quiet, args.verbose))
        return args.func(args)
    except UserError as exc:
        print(f"siammask: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:  # an optional part (siammask.extras) that this run needs
        if exc.name not in EXTRAS:
            raise
        print(f"siammask: error: {missing(exc.name, command)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before a command's own loop took over Ctrl-C (imports, loading)
        print("siammask: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
