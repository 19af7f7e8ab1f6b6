# SPDX-License-Identifier: Apache-2.0
"""hdl.arith against the golden model, exhaustively on Amaranth's simulator."""

from __future__ import annotations

import pytest
import torch
from amaranth.hdl import Module, Signal, signed
from amaranth.sim import Simulator

from golden.arith import odd_value, requantize
from hdl.arith import odd_from_code, round_shift_saturate
from insitugen.config import ROUNDINGS

# (value bits, shift, out_bits): ordinary, shift 0/1, shift wider than the value,
# out_bits wider than the shifted value (no saturation possible)
REQUANT_CASES = [(10, 3, 5), (6, 0, 4), (6, 1, 3), (4, 6, 3), (5, 5, 4), (3, 7, 2), (8, 2, 8)]


@pytest.mark.parametrize("rounding", ROUNDINGS)
@pytest.mark.parametrize("bits,shift,out_bits", REQUANT_CASES,
                         ids=[f"w{b}_s{s}_o{o}" for b, s, o in REQUANT_CASES])
def test_round_shift_saturate_exhaustive(bits, shift, out_bits, rounding):
    m = Module()
    x = Signal(signed(bits))
    y = Signal(signed(out_bits))
    m.d.comb += y.eq(round_shift_saturate(x, bits, out_bits, shift, rounding))
    values = range(-(1 << (bits - 1)), 1 << (bits - 1))
    want = requantize(torch.tensor(list(values)), out_bits, shift, rounding).tolist()
    got = []

    async def tb(ctx):
        for v in values:
            ctx.set(x, v)
            got.append(ctx.get(y))

    sim = Simulator(m)
    sim.add_testbench(tb)
    sim.run()
    assert got == want


@pytest.mark.parametrize("bits", [1, 2, 3, 5, 8])
def test_odd_from_code_exhaustive(bits):
    m = Module()
    n = Signal(bits)
    v = Signal(signed(bits + 1))
    m.d.comb += v.eq(odd_from_code(n, bits))
    got = []

    async def tb(ctx):
        for c in range(1 << bits):
            ctx.set(n, c)
            got.append(ctx.get(v))

    sim = Simulator(m)
    sim.add_testbench(tb)
    sim.run()
    assert got == odd_value(torch.arange(1 << bits), bits).tolist()
