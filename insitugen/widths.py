# SPDX-License-Identifier: Apache-2.0
"""Width derivation shared by the golden model and the hardware.

Everything here is exact integer interval arithmetic on plain Python ints: the
golden model (``golden``) and the Amaranth components
(``hdl``) call these same functions, so the two can never disagree on
a width. Ranges are closed intervals ``(lo, hi)``.

Encodings (README, The arithmetic):

* ``odd``  -- an unsigned ``b``-bit code ``n`` stands for the odd integer
  ``m(n, b) = 2n - (2^b - 1)``, range ``[-(2^b - 1), 2^b - 1]``.
* ``twos`` -- a ``b``-bit two's-complement integer, range ``[-2^(b-1), 2^(b-1) - 1]``.

Slicing (LSB first, offsets ``o_j = sum_{l<j} w_l``):

* odd codes: every slice is itself an odd code, ``m(n, b) = sum_j 2^{o_j} m(n_j, w_j)``;
* two's complement: lower slices unsigned ``[0, 2^w - 1]``, top slice signed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

ENCODINGS = ("odd", "twos")

Range = tuple[int, int]


def odd_range(bits: int) -> Range:
    """Range of ``m(n, bits)`` over all codes: ``[-(2^bits - 1), 2^bits - 1]``."""
    top = (1 << bits) - 1
    return (-top, top)


def twos_range(bits: int) -> Range:
    """Range of a ``bits``-bit two's-complement integer."""
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def unsigned_range(bits: int) -> Range:
    return (0, (1 << bits) - 1)


def value_range(encoding: str, bits: int) -> Range:
    """Range of a whole operand of the given encoding and width."""
    if encoding == "odd":
        return odd_range(bits)
    if encoding == "twos":
        return twos_range(bits)
    raise ValueError(f"encoding must be one of {ENCODINGS}, not {encoding!r}")


def signed_bits(lo: int, hi: int) -> int:
    """Fewest bits of a two's-complement integer that holds every value in ``[lo, hi]``."""
    if lo > hi:
        raise ValueError(f"empty range [{lo}, {hi}]")
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits


def bits_for_count(count: int) -> int:
    """Bits of an unsigned counter that holds values ``0 .. count - 1`` (at least 1)."""
    return max(1, (count - 1).bit_length())


def product_range(a: Range, b: Range) -> Range:
    corners = [a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1]]
    return (min(corners), max(corners))


def scale_range(r: Range, count: int) -> Range:
    """Range of a sum of ``count`` values each in ``r``."""
    return (r[0] * count, r[1] * count)


def abs_max(r: Range) -> int:
    return max(abs(r[0]), abs(r[1]))


def default_slice_widths(bits: int, engine_bits: int) -> tuple[int, ...]:
    """Split ``bits`` into the fewest slices of at most ``engine_bits`` bits.

    LSB slices are full ``engine_bits`` wide, the top slice takes the rest, so a
    6-bit operand on a 3-bit engine is ``(3, 3)`` and a 7-bit one ``(3, 3, 1)``.
    """
    if bits <= engine_bits:
        return (bits,)
    full, rest = divmod(bits, engine_bits)
    return (engine_bits,) * full + ((rest,) if rest else ())


def slice_offsets(widths: Sequence[int]) -> tuple[int, ...]:
    """Bit offset of each slice, LSB first: ``o_j = sum_{l<j} w_l``."""
    offsets, acc = [], 0
    for w in widths:
        offsets.append(acc)
        acc += w
    return tuple(offsets)


def slice_ranges(encoding: str, widths: Sequence[int]) -> tuple[Range, ...]:
    """Range of the value of each slice as the engine sees it.

    Odd slices are odd codes of their own width; two's-complement slices are
    unsigned below the top slice and signed at the top.
    """
    if encoding == "odd":
        return tuple(odd_range(w) for w in widths)
    if encoding == "twos":
        lower = tuple(unsigned_range(w) for w in widths[:-1])
        return lower + (twos_range(widths[-1]),)
    raise ValueError(f"encoding must be one of {ENCODINGS}, not {encoding!r}")


def engine_operand_bits(engine_bits: int) -> int:
    """Width of the engine multiplier inputs: every slice is an (s+1)-bit signed value."""
    return engine_bits + 1


@dataclass(frozen=True)
class SlicedOperand:
    """One operand of a sliced product: its encoding, total width and slices."""

    encoding: str
    bits: int
    widths: tuple[int, ...]

    @property
    def offsets(self) -> tuple[int, ...]:
        return slice_offsets(self.widths)

    @property
    def count(self) -> int:
        return len(self.widths)

    @property
    def ranges(self) -> tuple[Range, ...]:
        return slice_ranges(self.encoding, self.widths)

    @property
    def range(self) -> Range:
        return value_range(self.encoding, self.bits)


@dataclass(frozen=True)
class RecombinationWidths:
    """Derived widths of a recombination of ``a * x`` (or a dot product of ``terms`` such products).

    Partials are ordered ``k = j * x.count + l`` (slice ``j`` of ``a`` times slice
    ``l`` of ``x``); ``shifts[k] = o_j + p_l``.
    """

    a: SlicedOperand
    x: SlicedOperand
    terms: int
    partial_bits: int
    shifts: tuple[int, ...]
    partial_ranges: tuple[Range, ...]
    out_bits: int
    result_range: Range

    @property
    def count(self) -> int:
        return len(self.shifts)

    @property
    def min_partial_bits(self) -> int:
        return max(signed_bits(*r) for r in self.partial_ranges)

    @property
    def serial_order(self) -> tuple[int, ...]:
        """Order of partials in serial mode: shift descending (MSB first), ties by index."""
        return tuple(sorted(range(self.count), key=lambda k: (-self.shifts[k], k)))


def recombination_widths(a: SlicedOperand, x: SlicedOperand, terms: int = 1,
                         partial_bits: int = 0) -> RecombinationWidths:
    """Derive partial and output widths of a sliced product / dot product.

    ``partial_bits = 0`` picks the fewest bits that hold every engine partial
    (``terms`` products of one slice pair); a larger value is kept as given.
    ``out_bits`` holds the shift-add of *any* partials of ``partial_bits`` bits
    (not just consistent ones), so the unit never overflows whatever it is fed:
    ``sum_k 2^{s_k} * [-2^(pb-1), 2^(pb-1) - 1]``.
    """
    shifts, ranges = [], []
    for oj, rj in zip(a.offsets, a.ranges, strict=True):
        for pl, rl in zip(x.offsets, x.ranges, strict=True):
            shifts.append(oj + pl)
            ranges.append(scale_range(product_range(rj, rl), terms))
    need = max(signed_bits(*r) for r in ranges)
    pb = need if partial_bits == 0 else partial_bits
    if pb < need:
        raise ValueError(f"partial_bits {pb} is narrower than the {need} bits the partials need")
    plo, phi = twos_range(pb)
    lo = sum(plo << s for s in shifts)
    hi = sum(phi << s for s in shifts)
    out_bits = signed_bits(lo, hi)
    result = scale_range(product_range(a.range, x.range), terms)
    return RecombinationWidths(a=a, x=x, terms=terms, partial_bits=pb, shifts=tuple(shifts),
                               partial_ranges=tuple(ranges), out_bits=out_bits,
                               result_range=result)


def sum_abs_bound(term_ranges: Iterable[tuple[Range, int]]) -> int:
    """Bound on every partial sum of terms ``2^shift * t`` (t in its range), in any order.

    Accumulators that add shifted slice products one at a time may pass through
    values outside the final result's range; this bound covers every prefix.
    """
    return sum(abs_max(r) << shift for r, shift in term_ranges)


def requant_out_range(out_bits: int) -> Range:
    return twos_range(out_bits)
