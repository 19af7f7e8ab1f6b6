# SPDX-License-Identifier: Apache-2.0
"""Back-pressure patterns: when a source offers a beat and when a sink is ready.

One definition for every testbench (cocotb on the Verilog, Amaranth's simulator in
the tests). It imports only numpy, so the testbenches in the simulator's embedded
Python stay light. A pattern is a level per clock cycle, ``True`` = 1:

* the **valid** pattern says in which cycles a source that is not already holding a
  beat raises ``valid`` (once raised, ``valid`` and the payload hold until the
  handshake, as the stream rules demand); a 0 only delays the next beat;
* the **ready** pattern is the sink's ``ready`` level in each cycle it is stepped.

=============  ==================================  ===================================
mode           valid (source offers)               ready (sink)
=============  ==================================  ===================================
``none``       every cycle                         every cycle
``periodic``   :data:`PERIODIC_VALID` repeated      :data:`PERIODIC_READY` repeated
               (3 cycles of 4)                     (3 of 5; coprime periods, so every
                                                   phase of one meets every phase of
                                                   the other)
``random``     each cycle with probability         runs of 1-6 ready cycles, then a
               :data:`RANDOM_VALID_P`              stall of 1-5 cycles; one stall in
                                                   ten (:data:`LONG_STALL_P`) lasts
                                                   8-20 cycles (the ``long_stall_8plus``
                                                   coverage bin)
=============  ==================================  ===================================

Random patterns come from a ``numpy.random.Generator`` the caller seeds (in a
testbench: from ``cocotb.RANDOM_SEED``; :func:`generators` gives independent ones for
the two sides), so a run seed replays them. Besides numpy it imports only the mode
names (:data:`verif.simulators.BACKPRESSURE`, standard library).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from verif.simulators import BACKPRESSURE

__all__ = ["BACKPRESSURE", "PERIODIC_VALID", "PERIODIC_READY", "RANDOM_VALID_P",
           "LONG_STALL_P", "check_mode", "generators", "valid_levels", "ready_levels",
           "valid_pattern", "ready_pattern", "bits_levels", "to_bits"]

PERIODIC_VALID = "1110"
PERIODIC_READY = "11100"
RANDOM_VALID_P = 0.7
LONG_STALL_P = 0.1
#: bursts (or cycles) drawn at once: per-cycle draws would dominate a long simulation
_BLOCK = 4096


def check_mode(mode: str) -> str:
    """``mode`` itself when it is one of :data:`BACKPRESSURE`, else ValueError."""
    if mode not in BACKPRESSURE:
        raise ValueError(f"backpressure must be one of {' | '.join(BACKPRESSURE)}, "
                         f"not {mode!r}")
    return mode


def generators(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Two independent generators (valid side, ready side) derived from ``seed``."""
    a, b = np.random.SeedSequence(int(seed)).spawn(2)
    return np.random.default_rng(a), np.random.default_rng(b)


def bits_levels(bits: str) -> Iterator[bool]:
    """The bit string ``bits`` (e.g. ``"1101"``) repeated for ever, one level per cycle."""
    if not bits or set(bits) - {"0", "1"}:
        raise ValueError(f"a pattern is a non-empty string of 0 and 1, not {bits!r}")
    levels = [b == "1" for b in bits]
    while True:
        yield from levels


def to_bits(levels) -> str:
    """The levels (booleans) as a bit string, the inverse of :func:`bits_levels`."""
    return "".join("1" if b else "0" for b in levels)


def _random_ready_block(rng: np.random.Generator) -> list[bool]:
    on = rng.integers(1, 7, _BLOCK)
    long = rng.random(_BLOCK) < LONG_STALL_P
    off = np.where(long, rng.integers(8, 21, _BLOCK), rng.integers(1, 6, _BLOCK))
    runs = np.stack([on, off], axis=1).ravel()
    return np.repeat(np.tile([True, False], _BLOCK), runs).tolist()


def valid_levels(mode: str, rng: np.random.Generator | None = None) -> Iterator[bool]:
    """Endless valid (offer) levels of ``mode``, one per cycle (see the module docstring)."""
    return _levels(mode, PERIODIC_VALID, _random_valid, rng)


def ready_levels(mode: str, rng: np.random.Generator | None = None) -> Iterator[bool]:
    """Endless ready levels of ``mode``, one per cycle stepped (see the module docstring)."""
    return _levels(mode, PERIODIC_READY, _random_ready, rng)


def _levels(mode: str, periodic: str, random_levels, rng) -> Iterator[bool]:
    if check_mode(mode) == "none":
        return bits_levels("1")
    if mode == "periodic":
        return bits_levels(periodic)
    if rng is None:
        raise ValueError("random back-pressure needs a seeded numpy Generator (rng=)")
    return random_levels(rng)


def _random_valid(rng: np.random.Generator) -> Iterator[bool]:
    while True:
        yield from (rng.random(_BLOCK) < RANDOM_VALID_P).tolist()


def _random_ready(rng: np.random.Generator) -> Iterator[bool]:
    while True:
        yield from _random_ready_block(rng)


def valid_pattern(mode: str, rng: np.random.Generator | None, length: int) -> np.ndarray:
    """The first ``length`` levels of :func:`valid_levels` as a boolean array."""
    return np.fromiter(valid_levels(mode, rng), bool, count=length)


def ready_pattern(mode: str, rng: np.random.Generator | None, length: int) -> np.ndarray:
    """The first ``length`` levels of :func:`ready_levels` as a boolean array."""
    return np.fromiter(ready_levels(mode, rng), bool, count=length)
