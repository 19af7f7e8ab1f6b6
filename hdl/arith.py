# SPDX-License-Identifier: Apache-2.0
"""Arithmetic building blocks shared by the recombination unit and the generator.

Each function returns Amaranth values; widths come from :mod:`insitugen.widths`
(the same derivation the golden model uses).

Odd-code mapping in hardware is free: for a ``w``-bit code ``n``,
``m(n, w) = 2n + 1 - 2^w`` is the ``(w+1)``-bit signed value whose bits are
``{~n[w-1], n[w-2:0], 1}`` -- one inverter, no adder.
"""

from __future__ import annotations

from typing import Sequence

from amaranth.hdl import Cat, Const, Mux, Value, signed, unsigned

from insitugen import widths as W


def odd_from_code(code: Value, width: int) -> Value:
    """``m(n, width)`` as a signed ``width + 1``-bit value (range ``±(2^width - 1)``)."""
    n = code[:width]
    if width == 1:
        return Cat(Const(1, 1), ~n[0]).as_signed()
    return Cat(Const(1, 1), n[:width - 1], ~n[width - 1]).as_signed()


def operand_slices(value: Value, operand: W.SlicedOperand) -> list[Value]:
    """The engine operands of each slice of ``value``, LSB first.

    * ``odd``: ``value`` holds the unsigned code; slice ``j`` becomes the odd value
      ``m(n_j, w_j)`` (signed ``w_j + 1`` bits).
    * ``twos``: ``value`` holds the two's-complement integer; lower slices are
      zero-extended unsigned ``w_j``-bit values, the top slice is signed.
    """
    out = []
    for j, (off, w) in enumerate(zip(operand.offsets, operand.widths, strict=True)):
        bits = value[off:off + w]
        if operand.encoding == "odd":
            out.append(odd_from_code(bits, w))
        elif j == operand.count - 1:
            out.append(bits.as_signed())
        else:
            out.append(bits.as_unsigned())
    return out


def shifted(value: Value, shift: int) -> Value:
    """``value * 2^shift`` (a wire shift, no logic)."""
    return value if shift == 0 else value.shift_left(shift)


def shift_add_levels(terms: Sequence[tuple[Value, int]]) -> list[list[Value]]:
    """Balanced shift-add tree of ``sum 2^shift * value``, level by level.

    Returns the list of levels: level 0 holds the shifted terms, each next level
    pairs neighbours with one adder each, the last level holds the single sum.
    Pairs are formed in the given order, so terms sorted by shift keep adders
    narrow. Callers that pipeline the tree register chosen levels.
    """
    if not terms:
        raise ValueError("shift-add tree needs at least one term")
    level = [shifted(v, s) for v, s in terms]
    levels = [level]
    while len(level) > 1:
        nxt = [level[i] + level[i + 1] for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
        levels.append(level)
    return levels


def round_shift_saturate(value: Value, value_bits: int, out_bits: int, shift: int,
                         rounding: str) -> Value:
    """Requantization in hardware, bit-exact to ``golden.arith.requantize``.

    Arithmetic right shift by ``shift`` with ``floor`` / ``half_up`` (ties away
    from zero) / ``half_even`` rounding, then saturation to signed ``out_bits``.
    ``out_bits = 0`` passes the value through (full precision).
    """
    v = value.as_signed() if value.shape().signed else value
    if out_bits == 0:
        return v
    if len(v) < shift + 2:
        # the remainder and the rounding need shift + 1 bits of the value: sign-extend
        v = Cat(v, v[-1].replicate(shift + 2 - len(v))).as_signed()
    if shift == 0:
        q = v
    else:
        q = v >> shift                                      # floor
        if rounding != "floor":
            rem = v.as_unsigned()[:shift]
            half = 1 << (shift - 1)
            # shift 1: the remainder is one bit and never above half (a constant
            # comparison would be a Verilator CMPCONST warning)
            above = (rem > half) if shift > 1 else Const(0, 1)
            if rounding == "half_up":
                up = above | ((rem == half) & ~v[-1])
            elif rounding == "half_even":
                up = above | ((rem == half) & q[0])
            else:
                raise ValueError(f"rounding must be floor | half_up | half_even, not {rounding!r}")
            q = q + up
    lo, hi = W.twos_range(out_bits)
    sat = Mux(q > hi, hi, Mux(q < lo, lo, q))
    return sat.as_signed()[:out_bits].as_signed()


def signed_shape(lo_hi: W.Range):
    return signed(W.signed_bits(*lo_hi))


def counter_shape(count: int):
    return unsigned(W.bits_for_count(count))
