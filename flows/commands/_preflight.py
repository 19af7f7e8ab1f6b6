# SPDX-License-Identifier: Apache-2.0
"""Checks a command makes before its first step, so that a missing tool or an output
folder it cannot write fails in a second with one line, not after minutes of simulation
or training. Each check has no side effect (it creates nothing)."""

from __future__ import annotations

import os
from pathlib import Path

from insitugen.paths import check_output_file

__all__ = ["require_writable_file", "require_simulator",
           "require_yosys"]


def require_writable_file(path: str | os.PathLike, option: str) -> Path:
    """``path`` can be written as a regular file in a writable folder
    (:func:`insitugen.paths.check_output_file`, the one check of output files)."""
    return check_output_file(path, what=f"{option} file")


def require_simulator(name: str) -> None:
    """The HDL simulator ``name`` and what it needs to build are installed."""
    from verif.simulators import find_simulator

    find_simulator(name)


def require_yosys(yosys: str | None = None) -> None:
    """Yosys can be started (found; its first-call compile is not paid here)."""
    from eda.yosys import yosys_command

    yosys_command(yosys)
