"""The `ssmboard` command: thin subcommands over the Python API.

One module per command group, each with an ``add_parser(subparsers)`` that sets ``func`` on
its parsers; :data:`COMMAND_MODULES` lists them in the order ``--help`` shows them. Those
modules stay light at import (torch is imported inside the command functions).

A user error (any SsmboardError) prints one line ``error: ...`` on stderr and exits 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from ssmboard.errors import SsmboardError

COMMAND_MODULES: list[str] = [
    "ssmboard.cli.variants",
    "ssmboard.cli.evaluate",
    "ssmboard.cli.store",
    "ssmboard.cli.board",
    "ssmboard.cli.compare",
    "ssmboard.cli.lmeval",
    "ssmboard.cli.jobs",
]


def build_parser() -> argparse.ArgumentParser:
    from ssmboard.version import package_version

    parser = argparse.ArgumentParser(
        prog="ssmboard",
        description="Register SSM kernel variants, evaluate them, and compare them on a leaderboard.",
    )
    parser.add_argument("--version", action="version", version=f"ssmboard {package_version()}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress (INFO level)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `ssmboard` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verbose:
        import logging

        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except SsmboardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `ssmboard variants list | head`
        return 0
