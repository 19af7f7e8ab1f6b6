# SPDX-License-Identifier: Apache-2.0
"""Proof of the slicing identity: ``value(n) == sum_j 2^{o_j} * operand_slices(n)[j]`` for
every value ``n`` of a sliced operand (``hdl.arith.operand_slices``; combinational SAT).
It proves up to 64-bit operands in well under a second.
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hdl.arith import operand_slices
from insitugen import widths as W
from verif.proofs.sat import ProofReport, operand_shape, operand_value, run_sat

__all__ = ["prove_slicing"]


class _SlicingHarness(wiring.Component):
    def __init__(self, op: W.SlicedOperand):
        self._op = op
        super().__init__({"v": In(operand_shape(op)), "ok": Out(1)})

    def elaborate(self, platform):
        m = Module()
        op = self._op
        total = 0
        for off, s in zip(op.offsets, operand_slices(self.v, op), strict=True):
            total = total + (s.shift_left(off) if off else s)
        m.d.comb += self.ok.eq(total == operand_value(self.v, op))
        return m


def prove_slicing(op: W.SlicedOperand, *, workdir=None, timeout: float = 600) -> ProofReport:
    """Prove ``value(n) == sum_j 2^{o_j} * operand_slices(n)[j]`` for every ``n``."""
    what = "code n" if op.encoding == "odd" else "integer n"
    statement = (f"for every {op.bits}-bit {op.encoding} {what}, slices {list(op.widths)} "
                 f"recombine exactly: value(n) = sum_j 2^o_j * slice_j(n)")
    return run_sat(_SlicingHarness(op), depth=0, name=f"slicing {op.encoding}{op.bits}",
                   statement=statement,
                   config={"encoding": op.encoding, "bits": op.bits, "widths": list(op.widths)},
                   workdir=workdir, timeout=timeout)
