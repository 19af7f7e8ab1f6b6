# SPDX-License-Identifier: Apache-2.0
"""The ``insitugen`` commands: one module per command, each with ``HELP``,
``add_args(parser)`` and ``run(args) -> int``.

A command module imports only argparse and the base floor (``insitugen``) at
module level, so building the whole parser (``insitugen --help``, ``insitugen
CMD --help``) never loads torch, Amaranth or matplotlib; each ``run`` imports
the rooms it drives.
"""

from __future__ import annotations

#: Command modules in the order ``insitugen --help`` lists them; the command name is
#: the module name with ``_`` written as ``-``.
COMMANDS: tuple[str, ...] = (
    "verilog", "sim", "golden", "synth", "flow", "sweep", "memory", "export",
    "train_digits", "train_cifar", "prove", "network",
)


def command_name(module: str) -> str:
    return module.replace("_", "-")
