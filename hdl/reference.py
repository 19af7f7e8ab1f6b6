# SPDX-License-Identifier: Apache-2.0
"""Reference designs the area reports compare the sliced datapath with.

None of these is part of the generated hardware; they are what a designer
would build instead, synthesized next to it in the same Yosys run.

* :class:`EngineLane` -- one lane of the low-precision engine the
  recombination unit attaches to: an ``(s+1) x (s+1)``-bit signed multiplier
  and an accumulator, ``s = engine_bits``.
* :class:`FullWidthMultiplier` -- the plain, unsliced multiply-accumulate of
  the full operands at the throughput of the sliced path (see its docstring).
* :class:`ReferenceEngine` -- ``lanes`` engine lanes side by side: the same
  multipliers and accumulators as the generator's engine, without slicing,
  sequencing, memories or recombination. ``operand_registers=True`` registers
  the operands first (as an engine fed from registers does): the same area
  comparison less fair to the generator, but a fair *delay* comparison, since the
  plain form's multiplier path starts at input ports (no clock-to-Q).

Stream protocol (all three): an input beat is taken when ``i.valid & i.ready``;
it carries operands and ``last``. The lane multiplies and adds to its
accumulator; on the beat with ``last`` set the finished sum (including that
beat's product) moves to the output register and the accumulator restarts from
zero with the next beat. ``o`` holds the sum until taken (``o.valid &
o.ready``); ``i.ready = ~o.valid | o.ready``, so a full output register stalls
the input and no sum is lost. Latency: a sum appears on ``o`` one cycle after
its ``last`` beat; throughput: one input beat per cycle.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from insitugen import widths as W

from .arith import odd_from_code


def _mac(m: Module, i, o, products, acc_shape) -> None:
    """Accumulate ``products`` (one value, or a list: one per lane) of each taken beat; emit
    the sums on ``last``."""
    single = not isinstance(products, list)
    prods = [products] if single else products
    accs = [Signal(acc_shape, name=f"acc{k}") for k in range(len(prods))]
    take = Signal()
    m.d.comb += [i.ready.eq(~o.valid | o.ready), take.eq(i.valid & i.ready)]
    with m.If(o.valid & o.ready):
        m.d.sync += o.valid.eq(0)
    with m.If(take):
        for k, (acc, p) in enumerate(zip(accs, prods, strict=True)):
            total = acc + p
            with m.If(i.payload.last):
                m.d.sync += acc.eq(0)
                if single:
                    m.d.sync += o.payload.eq(total)
                else:
                    m.d.sync += o.payload[k].eq(total)
            with m.Else():
                m.d.sync += acc.eq(total)
        with m.If(i.payload.last):
            m.d.sync += o.valid.eq(1)


class EngineLane(wiring.Component):
    """One engine lane: ``acc += a * x`` with ``a``, ``x`` signed ``engine_bits + 1`` bits.

    Ports: ``i``: stream of ``{a: signed(s+1), x: signed(s+1), last: 1}``;
    ``o``: stream of ``signed(acc_bits)`` (the sum of the products of the beats
    up to ``last``). The accumulator is ``acc_bits`` wide; the caller sizes it
    for its ``terms`` (no overflow check: the same contract as the engine).
    """

    def __init__(self, engine_bits: int, acc_bits: int):
        self.engine_bits, self.acc_bits = engine_bits, acc_bits
        op = signed(W.engine_operand_bits(engine_bits))
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({"a": op, "x": op, "last": 1}))),
            "o": Out(stream.Signature(signed(acc_bits))),
        })

    def elaborate(self, platform):
        m = Module()
        _mac(m, self.i, self.o, self.i.payload.a * self.i.payload.x, signed(self.acc_bits))
        return m


def _operand_value(code, operand: W.SlicedOperand):
    """The signed value of an unsliced operand: odd code -> m(n, b), twos -> as signed."""
    if operand.encoding == "odd":
        return odd_from_code(code, operand.bits)
    return code.as_signed()


class FullWidthMultiplier(wiring.Component):
    """The unsliced reference: ``acc += value(a) * value(x)`` of the full operands.

    ``a_op`` / ``x_op``: the operands (:class:`insitugen.widths.SlicedOperand`;
    only their encoding and width matter here). Odd codes are mapped with
    :func:`hdl.arith.odd_from_code` (free wiring), two's-complement
    operands are used as signed.

    Ports: ``i``: stream of ``{a: unsigned(a_bits), x: unsigned(x_bits), last: 1}``
    (raw code / two's-complement bits); ``o``: stream of ``signed(result_bits)``,
    the exact sum over the ``terms`` beats up to ``last``, ``result_bits`` =
    fewest bits of ``terms * range(a) * range(x)``.

    Same throughput as the sliced path: one full product per cycle, so one
    finished dot product of ``terms`` products every ``terms`` cycles -- exactly
    the rate of the parallel sliced path, whose ``S_a * S_x`` engine lanes each
    take one slice product per cycle and hand the recombination unit one set
    of partials every ``terms`` cycles. (A serial sliced path, one lane, is
    ``S_a * S_x`` times slower; reports give both throughputs.)
    """

    def __init__(self, a_op: W.SlicedOperand, x_op: W.SlicedOperand, terms: int = 1):
        self.a_op, self.x_op, self.terms = a_op, x_op, terms
        rng = W.scale_range(W.product_range(a_op.range, x_op.range), terms)
        self.result_bits = W.signed_bits(*rng)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout(
                {"a": unsigned(a_op.bits), "x": unsigned(x_op.bits), "last": 1}))),
            "o": Out(stream.Signature(signed(self.result_bits))),
        })

    def elaborate(self, platform):
        m = Module()
        a = _operand_value(self.i.payload.a, self.a_op)
        x = _operand_value(self.i.payload.x, self.x_op)
        _mac(m, self.i, self.o, a * x, signed(self.result_bits))
        return m


class ReferenceEngine(wiring.Component):
    """``lanes`` engine lanes in lock-step (one shared handshake).

    Ports: ``i``: stream of ``{a: Array(signed(s+1), lanes), x: Array(signed(s+1), lanes),
    last: 1}``; ``o``: stream of ``Array(signed(acc_bits), lanes)``. Lane ``k``
    accumulates ``a[k] * x[k]`` exactly like :class:`EngineLane`.
    """

    def __init__(self, engine_bits: int, lanes: int, acc_bits: int, *,
                 operand_registers: bool = False):
        self.engine_bits, self.lanes, self.acc_bits = engine_bits, lanes, acc_bits
        self.operand_registers = operand_registers
        op = data.ArrayLayout(signed(W.engine_operand_bits(engine_bits)), lanes)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({"a": op, "x": op, "last": 1}))),
            "o": Out(stream.Signature(data.ArrayLayout(signed(acc_bits), lanes))),
        })

    def elaborate(self, platform):
        m = Module()
        src = self.i
        if self.operand_registers:
            # a one-beat operand register in front of the lanes: it takes a beat whenever
            # it is empty or its beat moves on into the accumulators
            reg = stream.Signature(self.i.payload.shape()).flip().create()
            m.d.comb += self.i.ready.eq(~reg.valid | reg.ready)
            with m.If(self.i.ready):
                m.d.sync += [reg.valid.eq(self.i.valid), reg.payload.eq(self.i.payload)]
            src = reg
        prods = [src.payload.a[k] * src.payload.x[k] for k in range(self.lanes)]
        _mac(m, src, self.o, prods, signed(self.acc_bits))
        return m
