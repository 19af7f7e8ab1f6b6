"""Checks a command makes before its first step, so that a missing tool or an output
folder it cannot write fails in a second with one line, not after minutes of simulation
or training. Each check has no side effect (it creates nothing)."""

from __future__ import annotations

import os
from pathlib import Path

from insitugen.errors import ConfigError

__all__ = ["require_writable_dir", "require_writable_file", "require_simulator",
           "require_yosys"]


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def require_writable_dir(folder: str | os.PathLike, option: str) -> Path:
    """``folder`` is a folder this process can create files in, or can create."""
    folder = Path(folder)
    base = _nearest_existing(folder)
    if not base.is_dir():
        raise ConfigError(f"{option} '{folder}' cannot be created: '{base}' is a file, not a "
                          f"folder; pick another {option}")
    if not os.access(base, os.W_OK | os.X_OK):
        what = "folder" if base == folder.absolute() else f"folder '{base}' above it"
        raise ConfigError(f"{option} '{folder}' is not writable (the {what} denies "
                          f"writing); pick another {option}")
    return folder


def require_writable_file(path: str | os.PathLike, option: str) -> Path:
    """``path`` can be written as a file: not a folder, its folder writable."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{option} '{path}' is a folder: give a file name")
    require_writable_dir(path.parent, f"the folder of {option}")
    return path


def require_simulator(name: str) -> None:
    """The HDL simulator ``name`` and what it needs to build are installed."""
    from verif.simulators import find_simulator

    find_simulator(name)


def require_yosys(yosys: str | None = None) -> None:
    """Yosys can be started (found; its first-call compile is not paid here)."""
    from eda.yosys import yosys_command

    yosys_command(yosys)
