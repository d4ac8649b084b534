"""The `bench` command: one module per command (`add_parser` and `run(args) -> int`), listed
in `COMMANDS`. Building the parser imports no torch, scipy or Optuna: each command imports
what it needs when it runs, so `bench --help` answers at once."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from bench.cli import cache, compare, data, listing, report, run, status, study, sweep
from bench.cli.options import OneLineParser
from bench.core.errors import BenchError, Interrupted
from bench.core.signals import exit_code, stop_on_signals, stopped_by

COMMANDS = (run, report, sweep, status, compare, study, listing, data, cache)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `bench` and its sub-commands."""
    parser = OneLineParser(
        prog="bench", description="Benchmark imbalance methods for medical image classification."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `bench` console script; user errors exit with code 2."""
    stop_on_signals()  # SIGTERM and SIGHUP end a command as Ctrl-C does
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit:  # --help, or an argument error already printed on one line
        return exit.code if isinstance(exit.code, int) else 2
    try:
        return int(args.run(args))
    except BenchError as error:
        print(f"bench: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Interrupted as interrupted:
        print(f"bench: {interrupted}", file=sys.stderr)
        return exit_code()
    except KeyboardInterrupt:
        print(f"bench: {stopped_by()}; finished runs are kept, rerun to resume.", file=sys.stderr)
        return exit_code()


if __name__ == "__main__":
    sys.exit(main())
