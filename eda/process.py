# SPDX-License-Identifier: Apache-2.0
"""Running a tool so that it never outlives the run that started it.

``subprocess.run`` kills only its direct child on an interrupt or a timeout, and nothing
at all when insitugen itself is killed: ``make``'s compilers and Yosys keep running.
:func:`run_tool` starts the tool under a small guard in its own process group; when the
wait ends in any exception (Ctrl-C, a timeout) the whole group is killed before the
exception goes on, and when insitugen dies (even of ``kill -9``) the kernel tells the
guard, which kills the group (:data:`GUARD`). :func:`stale_temp_folders` /
:func:`temp_folder` name temporary folders after the process that made them, so a run
killed outright (SIGKILL leaves no chance to clean up) has its folders removed by the
next run.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

__all__ = ["run_tool", "Cancelled", "temp_folder", "work_folder", "stale_temp_folders",
           "remove_stale_temp_folders"]


class Cancelled(Exception):
    """:func:`run_tool` stopped the tool because its ``cancel`` event was set."""


#: The guard each tool runs under (``python -c GUARD OUR_PID TOOL ARGS...``): it asks the
#: kernel for SIGTERM when the thread that started it dies (``PR_SET_PDEATHSIG``; it
#: survives the guard's own start, unlike a ``preexec_fn``, which is unsafe in threads),
#: starts the tool in its process group and, on SIGTERM, kills that whole group, so a
#: ``kill -9`` of insitugen takes ``make``, the compilers and Yosys with it.
GUARD = """
import ctypes, os, signal, subprocess, sys
def stop(signum, frame):
    os.killpg(0, signal.SIGKILL)
signal.signal(signal.SIGTERM, stop)
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))
except (OSError, AttributeError):
    pass
if os.getppid() != int(sys.argv[1]):
    stop(0, None)
try:
    child = subprocess.Popen(sys.argv[2:])
except OSError as e:
    sys.stderr.write(f"{sys.argv[2]}: {e.strerror or e}\\n")
    sys.exit(127)
rc = child.wait()
sys.exit(128 - rc if rc < 0 else rc)
"""


def run_tool(cmd: Sequence[str], *, timeout: float | None = None, cancel=None,
             **kwargs) -> subprocess.CompletedProcess:
    """``subprocess.run(cmd, timeout=timeout, **kwargs)`` with the tool in its own process
    group under :data:`GUARD` (it dies with us, even on ``kill -9``), the whole group
    killed when the wait is interrupted or times out. A tool that cannot be started
    raises ``FileNotFoundError`` / ``PermissionError`` as ``run`` would. ``cancel``: a
    ``threading.Event`` another thread may set; the group is then killed within ~0.2 s
    and :class:`Cancelled` raised."""
    import sys

    cmd = list(cmd)
    exe = cmd[0] if os.sep in cmd[0] else shutil.which(cmd[0], path=(kwargs.get("env") or
                                                                      os.environ).get("PATH"))
    if exe is None or not os.path.exists(exe):
        raise FileNotFoundError(2, "No such file or directory", cmd[0])
    if not os.access(exe, os.X_OK) or os.path.isdir(exe):
        raise PermissionError(13, "Permission denied", exe)
    kwargs.pop("check", None)
    if kwargs.pop("capture_output", False):
        kwargs["stdout"] = kwargs["stderr"] = subprocess.PIPE
    guarded = [sys.executable, "-c", GUARD, str(os.getpid()), *cmd]
    with subprocess.Popen(guarded, process_group=0, **kwargs) as proc:
        try:
            out, err = _wait(proc, cmd, timeout, cancel)
        except BaseException:
            kill_group(proc)
            raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _wait(proc: subprocess.Popen, cmd, timeout: float | None, cancel):
    """``proc.communicate(timeout=timeout)``, checking ``cancel`` every 0.2 s."""
    if cancel is None:
        return proc.communicate(timeout=timeout)
    import time

    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        step = 0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic()))
        try:
            return proc.communicate(timeout=step)
        except subprocess.TimeoutExpired:
            if cancel.is_set():
                raise Cancelled(cmd[0]) from None
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(cmd, timeout) from None


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


def work_folder(stack: contextlib.ExitStack, kind: str, workdir: str | Path | None) -> Path:
    """``workdir`` (created if missing and kept), or a :func:`temp_folder` of ``kind``
    removed when ``stack`` closes: where a run of several tools keeps its files."""
    if workdir is not None:
        root = Path(workdir)
        root.mkdir(parents=True, exist_ok=True)
        return root
    tmp = temp_folder(kind)
    stack.callback(tmp.cleanup)
    return Path(tmp.name)


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
