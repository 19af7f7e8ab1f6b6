# SPDX-License-Identifier: Apache-2.0
"""``insitugen`` command line: one subcommand per job (README, Commands).

Every command is a module of :mod:`flows.commands` with ``add_args(parser)`` and
``run(args) -> int``; the parser is built from all of them at once (their module-level
imports are light, so ``insitugen --help`` loads no torch). Every command exits
non-zero with one clear line on bad input (``insitugen: error: ...``) and leaves no
partial output file behind.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from gen.limits import forced
from insitugen import __version__
from insitugen.errors import InsitugenError

from .commands import COMMANDS, command_name
from .preflight import add_force_arg, check_outputs
from .signals import interrupted, interrupts


class OneLineErrorParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are the one line every other error is:
    ``insitugen: error: ...`` and exit 2, with no usage block and no subcommand in the
    prefix. ``add_subparsers`` makes every subcommand parser of this class too; the help
    hint names the command whose options were wrong."""

    def error(self, message: str):  # type: ignore[override]
        program, _, command = self.prog.partition(" ")
        hint = f"{program} {command} --help" if command else f"{program} --help"
        self.exit(2, f"{program}: error: {message} (see '{hint}')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="insitugen",
        description="Hardware generator for multi-level in situ weight generation (MLG).")
    parser.add_argument("--version", action="version", version=f"insitugen {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        command = importlib.import_module(f"{__package__}.commands.{module}")
        p = sub.add_parser(command_name(module), help=command.HELP, description=command.HELP)
        command.add_args(p)
        add_force_arg(command_name(module), p)
        p.set_defaults(func=command.run, parser=p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:     # reported by the command's parser, so the hint names its --help
        args.parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        with interrupts():
            check_outputs(args.command, args)   # before any work: name what cannot be written
            with forced(getattr(args, "force", False)):
                rc = int(args.func(args) or 0)
            if interrupted():                   # a Ctrl-C swallowed by some __del__
                raise KeyboardInterrupt
            return rc
    except InsitugenError as e:
        print(f"insitugen: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("insitugen: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
