"""Running a tool so that it never outlives the run that started it.

``subprocess.run`` kills only its direct child on an interrupt or a timeout: ``make``'s
compilers, Yosys' workers and the simulator keep running. :func:`run_tool` starts the
tool in its own process group and, when the wait ends in any exception (Ctrl-C, a
timeout), kills the whole group before re-raising. :func:`stale_temp_folders` /
:func:`temp_folder` name temporary folders after the process that made them, so a run
killed outright (SIGKILL leaves no chance to clean up) has its folders removed by the
next run.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

__all__ = ["run_tool", "temp_folder", "stale_temp_folders", "remove_stale_temp_folders"]


def run_tool(cmd: Sequence[str], *, timeout: float | None = None,
             **kwargs) -> subprocess.CompletedProcess:
    """``subprocess.run(cmd, timeout=timeout, **kwargs)`` with the tool in its own process
    group (``process_group=0``: no ``preexec_fn``, safe in threads), the whole group
    killed when the wait is interrupted or times out. Raises what ``run`` raises."""
    kwargs.pop("check", None)
    capture = kwargs.pop("capture_output", False)
    if capture:
        kwargs["stdout"] = kwargs["stderr"] = subprocess.PIPE
    with subprocess.Popen(list(cmd), process_group=0, **kwargs) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except BaseException:
            kill_group(proc)
            raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process group led by ``proc`` and reap ``proc``."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.kill()
    proc.wait()


_STAMP = re.compile(r"^insitugen-(?P<kind>[a-z]+)-pid(?P<pid>\d+)-")


def temp_folder(kind: str) -> tempfile.TemporaryDirectory:
    """A temporary folder ``insitugen-<kind>-pid<our pid>-XXXX`` (removed with the
    object); stale ones of dead processes are removed first."""
    remove_stale_temp_folders(kind)
    return tempfile.TemporaryDirectory(prefix=f"insitugen-{kind}-pid{os.getpid()}-")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:     # someone else's process: alive
        return True
    return True


def stale_temp_folders(kind: str, root: str | Path | None = None) -> list[Path]:
    """Our temporary folders of ``kind`` whose process is gone (killed before cleaning)."""
    root = Path(root if root is not None else tempfile.gettempdir())
    out = []
    try:
        entries = list(root.iterdir())
    except OSError:
        return out
    for p in entries:
        m = _STAMP.match(p.name)
        if (m and m.group("kind") == kind and not p.is_symlink() and p.is_dir()
                and _owned(p) and not _alive(int(m.group("pid")))):
            out.append(p)
    return out


def _owned(p: Path) -> bool:
    try:
        return p.lstat().st_uid == os.getuid()
    except OSError:
        return False


def remove_stale_temp_folders(kind: str, root: str | Path | None = None) -> int:
    """Remove :func:`stale_temp_folders`; returns how many went."""
    gone = 0
    for p in stale_temp_folders(kind, root):
        shutil.rmtree(p, ignore_errors=True)
        gone += not p.exists()
    return gone
