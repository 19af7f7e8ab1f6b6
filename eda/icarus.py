# SPDX-License-Identifier: Apache-2.0
"""Icarus Verilog (Debian's ``iverilog`` package, optional): find it, read its version."""

from __future__ import annotations

import shutil
import subprocess

from insitugen.errors import ToolError

__all__ = ["find", "version", "INSTALL_HINT"]

#: How to get Icarus, for error messages.
INSTALL_HINT = "apt-get install iverilog, or use --simulator verilator"


def find() -> dict[str, str]:
    """Paths of ``iverilog`` (compiler) and ``vvp`` (run time), both needed to simulate."""
    found = {}
    for exe in ("iverilog", "vvp"):
        path = shutil.which(exe)
        if path is None:
            raise ToolError(f"Icarus Verilog not found ('{exe}' is not on PATH): "
                            f"{INSTALL_HINT}")
        found[exe] = path
    return found


def version() -> str:
    """The first line of ``iverilog -V`` (e.g. ``Icarus Verilog version 11.0 (stable) ()``)."""
    iverilog = find()["iverilog"]
    try:
        out = subprocess.run([iverilog, "-V"], capture_output=True, text=True, timeout=60)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        raise ToolError(f"'iverilog -V' did not run: reinstall Icarus ({INSTALL_HINT})") from None
