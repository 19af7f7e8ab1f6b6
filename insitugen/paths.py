"""Paths the user hands us: what kind of thing is there, and whether a tool can take it.

Base floor (no other room imported): the config loader, the code-file reader, the
output checks and the tool adapters all ask here, so a folder given as a config, a
FIFO given as a code file or a build folder GNU Make cannot use is named the same way
everywhere.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import InsitugenError, clip

__all__ = ["describe_file", "make_unsafe_char", "check_build_folder", "tool_safe_name",
           "MAKE_UNSAFE"]


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
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory, not a file"
    if stat.S_ISFIFO(mode):
        return "is a named pipe (FIFO), not a regular file"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not a regular file"
    return "is not a regular file"


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
                             f"digits and - _ . + @ ~ , / only)")
    return Path(path)


def tool_safe_name(name: str) -> bool:
    """Whether a tool takes ``name`` as the plain file name it is: no leading ``-`` / ``+``
    / ``@`` (options, Verilator ``+define+``, response files), nothing :data:`MAKE_UNSAFE`
    (``$VAR`` expansion) and no whitespace. The tool adapters stage other names."""
    return bool(name) and not name.startswith(("-", "+", "@")) and make_unsafe_char(name) is None
