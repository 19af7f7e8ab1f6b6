# SPDX-License-Identifier: Apache-2.0
"""Paths the user hands us: what kind of thing is there, and whether a tool can take it.

Base floor (no other room imported): the config loader, the code-file reader, the
output checks and the tool adapters all ask here, so a folder given as a config, a
FIFO given as a code file or a build folder GNU Make cannot use is named the same way
everywhere.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import InsitugenError, OutputError, clip

__all__ = ["cache_root", "describe_file", "make_unsafe_char", "check_build_folder",
           "tool_safe_name", "check_output_file", "check_output_folder", "locked_folder",
           "MAKE_UNSAFE"]


def cache_root() -> Path:
    """``$INSITUGEN_CACHE``, or ``~/.cache/insitugen``: where simulator builds
    (``build/``, ``verilator-runtime/``) and synthesis results (``synth/``) are kept."""
    root = os.environ.get("INSITUGEN_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "insitugen"


def describe_file(path: str | Path) -> str | None:
    """Why ``path`` cannot be read as a data file (missing, a folder, a FIFO, ...), or
    None for a regular file. Never opens it (opening a FIFO would block)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "does not exist"
    except NotADirectoryError:
        return "does not exist (a parent in its path is a file)"
    except PermissionError:
        return "cannot be read (permission denied on its folder)"
    except OSError as e:
        return f"cannot be read ({clip(e.strerror or str(e))})"
    except ValueError:
        return "is not a usable path (it holds a NUL character)"
    return _not_regular(st.st_mode)


def _not_regular(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory, not a file"
    if stat.S_ISLNK(mode):
        return "is a symbolic link"
    if stat.S_ISFIFO(mode):
        return "is a named pipe (FIFO), not a regular file"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not a regular file"
    return "is not a regular file"


def check_output_file(path: str | Path, what: str = "output file") -> Path:
    """Refuse, before any work, an output that is not (or will not be) a regular file of
    a writable folder: an existing link, device, FIFO or folder (outputs are written
    beside and renamed into place, which would replace such a thing, e.g. ``/dev/null``),
    or a folder that cannot take a new file. Raises :class:`OutputError`."""
    path = Path(path)
    shown = f"{what} '{clip(str(path))}'"
    if not path.name:
        raise OutputError(f"{shown} names no file: give a file name")
    if len(os.fsencode(path.name)) > 255:
        raise OutputError(f"{shown} has a name longer than 255 bytes: use a shorter name")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        raise OutputError(f"{shown} cannot be written: a parent in its path is a file"
                          ) from None
    except ValueError:
        raise OutputError(f"{shown} is not a usable path (it holds a NUL character)") from None
    except OSError as e:
        raise OutputError(f"{shown} cannot be written: {clip(e.strerror or e)}") from None
    if st is not None:
        problem = _not_regular(st.st_mode)
        if problem:
            raise OutputError(f"{shown} {problem}: insitugen writes a new file and renames it "
                              f"into place, so it never replaces one; name a regular file")
    parent = path.parent
    check_output_folder(parent, label=f"{shown}: its folder '{clip(str(parent))}'")
    return path


def check_output_folder(folder: str | Path, what: str = "output folder",
                        label: str | None = None) -> Path:
    """Refuse a folder that cannot take new files (read-only, or a file in its path),
    before any work: a file is created in it (or in its nearest existing parent, for a
    folder that will be made) and removed. Raises :class:`OutputError` starting with
    ``label`` (default: ``what`` and the path)."""
    folder = Path(folder) if str(folder) else Path(".")
    shown = label or f"{what} '{clip(str(folder))}'"
    probe = folder
    while True:
        try:
            st = os.stat(probe)
            break
        except FileNotFoundError:
            if probe.parent == probe:
                raise OutputError(f"{shown} cannot be made: no parent of it exists") from None
            probe = probe.parent
        except NotADirectoryError:
            raise OutputError(f"{shown} cannot be made: a parent in its path is a file"
                              ) from None
        except ValueError:
            raise OutputError(f"{shown} is not a usable path (it holds a NUL character)"
                              ) from None
        except OSError as e:
            raise OutputError(f"{shown} cannot be used: {clip(e.strerror or e)}") from None
    if not stat.S_ISDIR(st.st_mode):
        if probe == folder:
            raise OutputError(f"{shown} is a file, not a folder: choose another path")
        raise OutputError(f"{shown} cannot be made: '{clip(str(probe))}' is a file, not a "
                          f"folder")
    where = "" if probe == folder else f" (its parent '{clip(str(probe))}', which exists)"
    try:
        fd, tmp = tempfile.mkstemp(dir=probe, prefix=".insitugen-probe-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise OutputError(f"{shown}{where} is not writable ({clip(e.strerror or e)}): choose "
                          f"a writable folder") from None
    return folder

#: Characters GNU Make (and the Makefiles Verilator and cocotb write) cannot take in a
#: folder path: whitespace splits words, ``$`` expands, ``#`` starts a comment, ``:`` /
#: ``;`` / ``%`` are rule syntax, quotes and the rest are taken literally by one tool and
#: by the shell of a recipe by the next.
MAKE_UNSAFE = frozenset("$\"'`\\#%:;*?[](){}<>|&!=")


def make_unsafe_char(path: str | Path) -> str | None:
    """The first character of ``path`` a Make-driven build cannot take (a description of
    it), or None when the path is safe."""
    for c in str(path):
        if c.isspace() or ord(c) < 32 or ord(c) == 127:
            return {" ": "a space", "\n": "a newline", "\t": "a tab"}.get(
                c, f"the control character {c!r}")
        if c in MAKE_UNSAFE:
            return f"'{c}'"
    return None


def check_build_folder(path: str | Path, what: str = "build folder",
                       fix: str = "pass --build-dir with a plain path") -> Path:
    """Refuse a folder a Verilator/make build cannot run in, with one line naming the
    path, the character and ``fix``; returns the path."""
    bad = make_unsafe_char(path)
    if bad:
        raise InsitugenError(f"{what} '{clip(str(path))}' holds {bad}, which GNU Make (and so "
                             f"the Verilator build) cannot handle in a path: {fix} (letters, "
                             f"digits and - _ . + @ ~ , / are safe)")
    return Path(path)


def tool_safe_name(name: str) -> bool:
    """Whether a tool takes ``name`` as the plain file name it is: no leading ``-`` / ``+``
    / ``@`` (options, Verilator ``+define+``, response files), nothing :data:`MAKE_UNSAFE`
    (``$VAR`` expansion) and no whitespace. The tool adapters stage other names."""
    return bool(name) and not name.startswith(("-", "+", "@")) and make_unsafe_char(name) is None


@contextlib.contextmanager
def locked_folder(folder: str | Path, what: str = "output folder",
                  fix: str = "wait for it to finish or choose another folder") -> Iterator[Path]:
    """Hold an exclusive lock on ``folder`` (made if missing) for the block; a second
    holder, in this or any process, is refused at once with one :class:`OutputError`
    line. The lock is on the folder itself (``flock`` of its descriptor): no lock file is
    left behind, and it dies with the process that held it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputError(f"{what} '{clip(str(folder))}' is in use by another insitugen "
                              f"run: {fix}") from None
        yield folder
    finally:
        os.close(fd)            # releases the lock
