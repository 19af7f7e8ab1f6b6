# SPDX-License-Identifier: Apache-2.0
"""Ctrl-C that cannot be swallowed.

Python turns SIGINT into ``KeyboardInterrupt`` wherever the main thread happens to be;
raised inside a ``__del__`` (Amaranth's ``MustUse.__del__``, say) it is printed as
"Exception ignored" and lost, and the command went on to exit 0. :func:`interrupts`
records every SIGINT as well as raising it, and :func:`interrupted` tells the command
line afterwards, so a run that was interrupted always ends with exit 130.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

__all__ = ["interrupts", "interrupted", "stop_if_interrupted"]

_SEEN = threading.Event()


def _on_sigint(signum, frame):
    _SEEN.set()
    raise KeyboardInterrupt


def interrupted() -> bool:
    """Whether a SIGINT arrived inside the current :func:`interrupts` block."""
    return _SEEN.is_set()


def stop_if_interrupted() -> None:
    """Raise ``KeyboardInterrupt`` now if a SIGINT was swallowed earlier: a long command
    calls it between its steps, so it stops at the next step, not at its end."""
    if _SEEN.is_set():
        raise KeyboardInterrupt


@contextlib.contextmanager
def interrupts() -> Iterator[None]:
    """Within the block, SIGINT raises ``KeyboardInterrupt`` and is remembered
    (:func:`interrupted`); the previous handler is restored afterwards. Outside the
    main thread (no signal handlers there) it only clears the record."""
    _SEEN.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
