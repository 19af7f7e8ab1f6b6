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

from .errors import clip

__all__ = ["describe_file"]


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
