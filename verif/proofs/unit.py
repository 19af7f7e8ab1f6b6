# SPDX-License-Identifier: Apache-2.0
"""What every recombination harness shares: the :class:`~hdl.recombination.RecombinationUnit`
under proof, input always valid and output always ready, and the check that the output
is valid exactly ``latency`` cycles after each input beat (after the last partial of a
group, in serial mode) and then equals the expected value.

Why a bounded proof from reset covers every input: with ``o.ready = 1`` and
``i.valid = 1`` the unit is a feed-forward pipeline (parallel) or a
beat-counter-driven accumulator (serial). Its output for an input beat depends only
on that beat (parallel) or on the beats of its own group (serial: beat 0 overwrites
the accumulator without reading it, and the beat counter wraps to its reset value 0
after the group), never on older state and never on anything but the free inputs.
So the first ``groups`` input groups after reset, with all inputs free in every
cycle, are every input group the unit can ever see, and unrolling
``groups * beats + latency`` cycles (:func:`recombination_depth`; ``beats`` = 1 in
parallel mode, ``count`` in serial mode) checks every one of their outputs.
``groups = 2`` also checks that a group leaves nothing behind that spoils the next.

Mutants (:data:`MUTANTS`), which must make a proof fail with a counterexample:
``"drop_slice"`` feeds 0 instead of the partial of the top slice pair
(``k = count - 1``); ``"late_valid"`` expects the output one cycle later than
:attr:`RecombinationUnit.latency` says.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from insitugen.config import RecombinationConfig

__all__ = ["MUTANTS", "UnitHarness", "recombination_depth", "config_words"]

MUTANTS = ("drop_slice", "late_valid")


def _delay(m: Module, valid, value, cycles: int, name: str):
    """``(valid, value)`` delayed by ``cycles`` registers (valid resets to 0)."""
    for c in range(cycles):
        v = Signal(name=f"{name}_valid{c}")
        d = Signal(value.shape(), name=f"{name}_value{c}")
        m.d.sync += [v.eq(valid), d.eq(value)]
        valid, value = v, d
    return valid, value


class UnitHarness(wiring.Component):
    """The unit with free inputs ``ports`` (plus ``ok``); subclasses say what feeds it
    (:meth:`parallel`, :meth:`serial`) and what it must output."""

    def __init__(self, cfg: RecombinationConfig, ports: dict[str, Any],
                 mutant: str | None = None):
        from hdl.recombination import RecombinationUnit

        self._cfg, self._mutant = cfg, mutant
        self.dut = RecombinationUnit(cfg)
        super().__init__({**ports, "ok": Out(1)})

    @property
    def checked_latency(self) -> int:
        """The latency the harness expects (one more than the unit's for ``late_valid``)."""
        return self.dut.latency + (1 if self._mutant == "late_valid" else 0)

    def parallel(self, m: Module):
        """Parallel mode: ``(partials fed to the unit, expected output value)``."""
        raise NotImplementedError

    def serial(self, m: Module, beat, first, handshake):
        """Serial mode: drive ``dut.i.payload`` for beat ``beat`` of a group; return the
        expected output value, read at the group's last beat."""
        raise NotImplementedError

    def elaborate(self, platform):
        cfg, wd = self._cfg, self._cfg.widths
        m = Module()
        m.submodules.dut = dut = self.dut
        m.d.comb += [dut.i.valid.eq(1), dut.o.ready.eq(1)]
        handshake = dut.i.valid & dut.i.ready
        exp = Signal(signed(wd.out_bits + 2))          # wider than the unit: catches overflow
        exp_valid = Signal()
        if cfg.mode == "parallel":
            parts, value = self.parallel(m)
            m.d.comb += [dut.i.payload[k].eq(p) for k, p in enumerate(parts)]
            m.d.comb += [exp.eq(value), exp_valid.eq(handshake)]
        else:
            n = wd.count
            beat = Signal(range(max(n, 2)))
            last = beat == n - 1
            with m.If(handshake):
                m.d.sync += beat.eq(Mux(last, 0, beat + 1))
            value = self.serial(m, beat, beat == 0, handshake)
            m.d.comb += [exp.eq(value), exp_valid.eq(handshake & last)]
        want_valid, want = _delay(m, exp_valid, exp, self.checked_latency, "exp")
        m.d.comb += self.ok.eq((dut.o.valid == want_valid) &
                               (~want_valid | (dut.o.payload == want)))
        return m


def recombination_depth(cfg: RecombinationConfig, latency: int, groups: int) -> int:
    """Cycles to unroll: ``groups`` input groups from reset, then ``latency`` more."""
    beats = 1 if cfg.mode == "parallel" else cfg.widths.count
    return groups * beats + latency


def config_words(cfg: RecombinationConfig) -> str:
    """The config in words, for proof statements."""
    return (f"{cfg.a_bits}-bit {cfg.a_encoding} a (slices {list(cfg.a_slices)}) x "
            f"{cfg.x_bits}-bit {cfg.x_encoding} x (slices {list(cfg.x_slices)}), "
            f"{cfg.terms} term{'s' if cfg.terms > 1 else ''}, {cfg.mode}, "
            f"{cfg.pipeline_stages} pipeline stage{'s' if cfg.pipeline_stages != 1 else ''}")
