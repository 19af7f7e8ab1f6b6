# SPDX-License-Identifier: Apache-2.0
"""Errors a user can cause and fix.

Every error insitugen raises on bad input is an :class:`InsitugenError`; the
command line prints its message as one line and exits non-zero. Messages name
the field, file or tool and say how to fix it.
"""


class InsitugenError(Exception):
    """Base class of all user-facing errors (bad config, bad codes, missing tool)."""


class ConfigError(InsitugenError, ValueError):
    """A config field is missing, of the wrong type, or outside its range."""


class CodesError(InsitugenError, ValueError):
    """A code file (``.npz``) is missing arrays, has the wrong shapes, or codes out of range."""


class ToolError(InsitugenError, RuntimeError):
    """An external tool (simulator, Yosys) is missing or failed."""


class VerificationError(InsitugenError, AssertionError):
    """The RTL disagreed with the golden model."""


def clip(text: object, limit: int = 80) -> str:
    """``text`` fit for one line of an error message: control characters (a newline in
    a file name) escaped, and cut in the middle to about ``limit`` characters (the full
    length noted when it is far longer), so a 1 MB bad value never becomes a 1 MB error
    line and a long path still shows its file name."""
    try:
        s = str(text)
    except ValueError:          # an int past Python's 4300-digit str() limit
        bits = text.bit_length() if isinstance(text, int) else 0
        return f"an integer of about {int(bits * 0.30103)} digits"
    if any(ord(c) < 32 or ord(c) == 127 for c in s):
        s = s.encode("unicode_escape").decode("ascii")
    if len(s) > limit:
        # cut the middle: the end of a long path is its file name, the part a user needs
        keep = max(limit - 3, 8)
        head, tail = keep - keep // 2, keep // 2
        cut = f"{s[:head]}...{s[-tail:]}"
        # a value many times the limit (a 1 MB field) also says how long it was
        s = cut + (f" ({len(s)} characters)" if len(s) > 4 * limit else "")
    return s


class OutputError(InsitugenError):
    """An output path cannot be written: its folder is read-only, or it names a link, a
    device or another thing that is not a regular file."""
