# SPDX-License-Identifier: Apache-2.0
"""Proof of the requantizer: ``hdl.arith.round_shift_saturate`` against an independent
formulation, for every signed ``bits``-bit input (combinational SAT, all values at once).

The reference: ``floor = v >> s``; ``half_up = sign(v) * ((|v| + 2^(s-1)) >> s)``;
``half_even = (v + 2^(s-1) - 1 + ((v >> s) & 1)) >> s``; then the clamp to the signed
``out_bits`` range (``out_bits = 0``: ``v`` itself).
"""

from __future__ import annotations

import os

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hdl.arith import round_shift_saturate
from insitugen import widths as W
from insitugen.config import ROUNDINGS
from insitugen.errors import ConfigError
from verif.proofs.sat import ProofReport, run_sat

__all__ = ["prove_requantizer"]


class _RequantizerHarness(wiring.Component):
    """``ok = (round_shift_saturate(v) == independent reference(v))``, ``v`` free."""

    def __init__(self, bits: int, out_bits: int, shift: int, rounding: str):
        self._p = (bits, out_bits, shift, rounding)
        super().__init__({"v": In(signed(bits)), "ok": Out(1)})

    def elaborate(self, platform):
        bits, out_bits, shift, rounding = self._p
        m = Module()
        v = self.v
        dut = Signal(signed(out_bits if out_bits else bits))
        m.d.comb += dut.eq(round_shift_saturate(v, bits, out_bits, shift, rounding))
        if out_bits == 0:
            ref = v
        else:
            if shift == 0 or rounding == "floor":
                r = v >> shift
            elif rounding == "half_up":
                mag = Signal(unsigned(bits + 1))
                m.d.comb += mag.eq(Mux(v < 0, -v, v))
                q = (mag + (1 << (shift - 1))) >> shift
                r = Mux(v < 0, -q, q)
            else:  # half_even
                r = (v + ((1 << (shift - 1)) - 1) + ((v >> shift) & 1)) >> shift
            lo, hi = W.twos_range(out_bits)
            ref = Mux(r > hi, hi, Mux(r < lo, lo, r))
        m.d.comb += self.ok.eq(dut == ref)
        return m


def prove_requantizer(bits: int, out_bits: int, shift: int, rounding: str, *,
                      workdir: str | os.PathLike | None = None,
                      timeout: float = 600) -> ProofReport:
    """Prove ``hdl.arith.round_shift_saturate`` against an independent formulation.

    For every signed ``bits``-bit input (combinational SAT, all values at once).
    """
    if rounding not in ROUNDINGS:
        raise ConfigError(f"rounding must be one of {' | '.join(ROUNDINGS)}, not {rounding!r}")
    if not (isinstance(bits, int) and 1 <= bits <= 64):
        raise ConfigError(f"requantizer input width must be in [1, 64], not {bits!r}")
    if out_bits == 0:
        what = "passes every value unchanged (out_bits = 0, full precision)"
    else:
        what = (f"equals clamp_{out_bits}-bit(round_{rounding}(v / 2^{shift})) "
                f"(independent formulation)")
    statement = f"for every signed {bits}-bit v, round_shift_saturate(v) {what}"
    return run_sat(_RequantizerHarness(bits, out_bits, shift, rounding), depth=0,
                   name="requantizer", statement=statement,
                   config={"bits": bits, "out_bits": out_bits, "shift": shift,
                           "rounding": rounding},
                   workdir=workdir, timeout=timeout)
