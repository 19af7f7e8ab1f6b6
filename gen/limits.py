# SPDX-License-Identifier: Apache-2.0
"""How big a generator build would be, estimated from the config alone, and the limits a
build must stay under unless the user forces it.

Every valid config is accepted by :mod:`insitugen.config`, but the largest ones
(4096 x 4096 channels, 11 x 11 kernels, 1024 lanes of 16-bit codes) would elaborate
for hours and write gigabytes of Verilog. :func:`estimate_build` reads the schedule
arithmetic (memory shapes, lanes, slice pairs, cycles) without elaborating anything, and
:func:`check_build` refuses, with the estimate and the limit in one line, a build past
:data:`LIMITS` (``--force``, :func:`forced`, overrides). The cost model was fitted to
``insitugen verilog`` runs (``BENCHMARKS.md``, Size limits): every memory word costs
Amaranth the elaboration of one initializer (~22 bytes + its hex digits of netlist text,
~0.25 us a byte; the all-zero initializers are dropped before the Verilog is written, so
they add no Verilog), every lane costs ~3 ms and ~0.5 kB per engine slice pair (plus ~8
pairs' worth of fixed logic).
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass
from typing import Iterator

from insitugen.config import Config, GeneratorConfig
from insitugen.errors import ConfigError

__all__ = ["BuildEstimate", "estimate_build", "check_build", "check_simulation", "forced",
           "LIMITS", "SIM_CYCLE_LIMIT", "golden_bytes", "check_golden"]

#: Limits of a build: estimated elaboration seconds, Verilog bytes, memory bits.
LIMITS = {"seconds": 300.0, "verilog_bytes": 500_000_000, "memory_bits": 128_000_000}
#: Most clock cycles one simulated pass may take (the testbench runs two or three).
SIM_CYCLE_LIMIT = 50_000_000
#: Most memory the golden model may need (bytes, estimated): the default; a smaller
#: machine gets half its physical memory.
GOLDEN_BYTES_LIMIT = 32 << 30

# the fitted cost model (module docstring)
_WORD_BYTES, _TEXT_SECONDS = 22, 2.5e-7           # per memory word; per byte of its text
_PAIR_BYTES, _PAIR_SECONDS, _LANE_FIXED_PAIRS = 600, 3e-3, 8
#: Per product order, the weight of one slice pair of a lane: the W1-free order's lane is
#: one multiply-accumulate on shared operands (about half the netlist text per pair of the
#: W1-recomputing lane, measured on 8-bit codes at 16 and 48 lanes: 5.9 kB per lane).
#: The w1once lane (one multiply-accumulate, two operand choices, no W1 register) is taken
#: between the two.
_ORDER_PAIR_WEIGHT = {"w1": 1.0, "direct": 1.0, "vb": 0.5, "w1once": 0.75}
#: Bytes refitted after the engine-clock vb datapath (the one-hot tap offset and the
#: sign-magnitude shared operands add ~70 kB of fixed text; 4 configs from 4 to 64 lanes
#: within 0.8-1.25x of the real Verilog, tests/test_cli_errors.py).
_BASE_SECONDS, _BASE_BYTES = 1.5, 120_000

_FORCE: contextvars.ContextVar[bool] = contextvars.ContextVar("insitugen_force", default=False)


@contextlib.contextmanager
def forced(on: bool = True) -> Iterator[None]:
    """Within the block, :func:`check_build` and friends let every size through."""
    token = _FORCE.set(bool(on))
    try:
        yield
    finally:
        _FORCE.reset(token)


@dataclass(frozen=True)
class BuildEstimate:
    """What building one generator would take (estimates, not measurements)."""

    memory_words: int
    memory_bits: int
    lanes: int
    slice_pairs: int            # engine slice pairs per lane (level 1 + level 2)
    verilog_bytes: int
    seconds: float              # elaboration to Verilog
    pass_cycles: int            # clock cycles of one generation pass

    def over(self) -> list[str]:
        """The limits this build exceeds, each as a short phrase for a message."""
        out = []
        if self.seconds > LIMITS["seconds"]:
            out.append(f"~{self.seconds:,.0f} s to elaborate (limit {LIMITS['seconds']:,.0f} s)")
        if self.verilog_bytes > LIMITS["verilog_bytes"]:
            out.append(f"~{_size(self.verilog_bytes)} of Verilog (limit "
                       f"{_size(LIMITS['verilog_bytes'])})")
        if self.memory_bits > LIMITS["memory_bits"]:
            out.append(f"{_size(self.memory_bits, 'bit')} of code memory (limit "
                       f"{_size(LIMITS['memory_bits'], 'bit')})")
        return out

    def describe(self) -> str:
        return (f"{self.lanes} lanes x {self.slice_pairs} slice pairs, "
                f"{self.memory_words:,} memory words")


def _size(n: float, unit: str = "B") -> str:
    """``n`` in decimal units: ``4.4 GB``, ``6.6 Gbit``."""
    for prefix in ("", "k", "M", "G", "T", "P"):
        if n < 1000 or prefix == "P":
            return f"{n:,.0f} {unit}" if not prefix else f"{n:,.1f} {prefix}{unit}"
        n /= 1000
    raise AssertionError  # pragma: no cover


def estimate_build(cfg: GeneratorConfig) -> BuildEstimate:
    """The :class:`BuildEstimate` of ``cfg``'s generator, from its schedule arithmetic
    (:class:`insitugen.schedule.Schedule`; nothing is elaborated)."""
    from insitugen.schedule import Schedule

    g = Schedule(cfg)
    shapes = dict(g.memory_shapes)
    if g.w1_buffer_shape is not None:
        shapes["W1"] = g.w1_buffer_shape
    words = sum(d for d, _ in shapes.values())
    bits = sum(d * w for d, w in shapes.values())
    text = sum(d * (_WORD_BYTES + -(-w // 4)) for d, w in shapes.values())
    pairs = len(g.pairs_level1) + len(g.pairs_level2)       # engine steps of one lane
    lane_pairs = cfg.lanes * (pairs + _LANE_FIXED_PAIRS) * _ORDER_PAIR_WEIGHT[g.order]
    return BuildEstimate(
        memory_words=words, memory_bits=bits, lanes=cfg.lanes, slice_pairs=pairs,
        verilog_bytes=int(_BASE_BYTES + _PAIR_BYTES * lane_pairs),
        seconds=_BASE_SECONDS + _TEXT_SECONDS * text + _PAIR_SECONDS * lane_pairs,
        pass_cycles=g.pass_cycles)


_FIX = "fewer lanes, narrower codes or a smaller base_out / layer, or pass --force"


def check_build(cfg: Config) -> None:
    """Refuse (:class:`ConfigError`, one line) a generator whose build would pass
    :data:`LIMITS`, unless :func:`forced`. Recombination units are always small."""
    if _FORCE.get() or not isinstance(cfg, GeneratorConfig):
        return
    estimate = estimate_build(cfg)
    over = estimate.over()
    if over:
        raise ConfigError(f"config is too large to build: {', '.join(over)}; "
                          f"{estimate.describe()}: use {_FIX}")


def check_simulation(cfg: Config) -> None:
    """Refuse a generator whose simulated pass would run past :data:`SIM_CYCLE_LIMIT`
    cycles (the build limits are checked too), unless :func:`forced`."""
    check_build(cfg)
    if _FORCE.get() or not isinstance(cfg, GeneratorConfig):
        return
    cycles = estimate_build(cfg).pass_cycles
    if cycles > SIM_CYCLE_LIMIT:
        raise ConfigError(f"config is too large to simulate: one generation pass takes "
                          f"{cycles:,} clock cycles (limit {SIM_CYCLE_LIMIT:,}; the testbench "
                          f"runs two or three passes): use {_FIX}")


def golden_bytes(cfg: GeneratorConfig) -> int:
    """Peak memory of :func:`golden.generate.generate` on ``cfg`` (bytes, estimated):
    int64 codes, the level-1 broadcast product ``[Bo, q, Bi, K]``, ``W1``, the level-2
    chunk, and the weights with the copies requantization makes."""
    q, K, p = cfg.in_channels, cfg.K, cfg.out_channels
    codes = sum(_prod(s) for s in cfg.code_shapes.values())
    w1 = cfg.Bo * q * K
    l1 = cfg.Bo * q * cfg.Bi * K if cfg.level1 else 0
    l2 = max(1 << 24, w1) if cfg.level2 else 0
    return 8 * (codes + l1 + w1 + l2 + 4 * p * q * K)


def _prod(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def golden_limit() -> int:
    """:data:`GOLDEN_BYTES_LIMIT`, or half the machine's physical memory when smaller."""
    import os

    try:
        phys = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return GOLDEN_BYTES_LIMIT
    return min(GOLDEN_BYTES_LIMIT, phys // 2)


def check_golden(cfg: GeneratorConfig) -> None:
    """Refuse a golden-model run that would need more than :func:`golden_limit` bytes."""
    if _FORCE.get():
        return
    need, limit = golden_bytes(cfg), golden_limit()
    if need > limit:
        raise ConfigError(f"config is too large for the golden model: about {_size(need)} of "
                          f"memory (limit {_size(limit)}; the weights alone are "
                          f"{_size(8 * cfg.n_weights)} as int64): use a smaller layer or "
                          f"base_in, or pass --force")
