# SPDX-License-Identifier: Apache-2.0
"""Bit-exact integer arithmetic of in situ generation (torch int64).

These functions define what the hardware must compute; the RTL is checked
against them value for value. All tensors are ``torch.int64``; Python ints and
numpy arrays are accepted and converted.
"""

from __future__ import annotations

from typing import Sequence

import torch

from insitugen import widths as W
from insitugen.config import ROUNDINGS


def as_int64(x) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.to(torch.int64)
    return torch.as_tensor(x, dtype=torch.int64)


def odd_value(codes, bits: int) -> torch.Tensor:
    """``m(n, b) = 2n - (2^b - 1)``: the odd integer a DoReFa-sym code stands for."""
    n = as_int64(codes)
    return 2 * n - ((1 << bits) - 1)


def odd_code(values, bits: int) -> torch.Tensor:
    """Inverse of :func:`odd_value`: the code of an odd integer in ``[-(2^b-1), 2^b-1]``."""
    m = as_int64(values)
    return (m + ((1 << bits) - 1)) // 2


def slice_codes(codes, widths: Sequence[int]) -> list[torch.Tensor]:
    """Split unsigned codes into slices of the given widths, LSB first."""
    n = as_int64(codes)
    out = []
    for off, w in zip(W.slice_offsets(widths), widths, strict=True):
        out.append((n >> off) & ((1 << w) - 1))
    return out


def slice_odd(codes, widths: Sequence[int]) -> list[torch.Tensor]:
    """Odd-code slices as engine operands: ``m(n_j, w_j)`` for each slice.

    Identity: ``m(n, b) == sum_j 2^{o_j} * m(n_j, w_j)``.
    """
    return [odd_value(s, w) for s, w in zip(slice_codes(codes, widths), widths, strict=True)]


def slice_twos(values, widths: Sequence[int]) -> list[torch.Tensor]:
    """Two's-complement slices: lower slices unsigned, the top slice signed.

    Identity: ``x == sum_j 2^{o_j} * x_j``.
    """
    x = as_int64(values)
    offs = W.slice_offsets(widths)
    out = []
    for j, (off, w) in enumerate(zip(offs, widths, strict=True)):
        if j == len(widths) - 1:
            out.append(x >> off)  # arithmetic shift: the signed top slice
        else:
            out.append((x >> off) & ((1 << w) - 1))
    return out


def slice_operand(values_or_codes, operand: W.SlicedOperand) -> list[torch.Tensor]:
    """Slices of an operand as the engine multiplies them.

    For ``odd`` operands pass the *codes*; for ``twos`` operands the integers.
    """
    if operand.encoding == "odd":
        return slice_odd(values_or_codes, operand.widths)
    return slice_twos(values_or_codes, operand.widths)


def operand_value(values_or_codes, operand: W.SlicedOperand) -> torch.Tensor:
    """The integer an operand stands for (odd value of a code, or the integer itself)."""
    if operand.encoding == "odd":
        return odd_value(values_or_codes, operand.bits)
    return as_int64(values_or_codes)


def sliced_partials(a, x, a_op: W.SlicedOperand, x_op: W.SlicedOperand,
                    dim: int | None = None) -> list[torch.Tensor]:
    """Engine partials ``P[k]``, ``k = j * x_op.count + l``: slice j of a times slice l of x.

    With ``dim`` given, each partial is a dot product summed over that dimension
    (the engine accumulating before recombination).
    """
    a_s = slice_operand(a, a_op)
    x_s = slice_operand(x, x_op)
    parts = []
    for aj in a_s:
        for xl in x_s:
            p = aj * xl
            parts.append(p.sum(dim=dim) if dim is not None else p)
    return parts


def recombine(partials, shifts: Sequence[int]) -> torch.Tensor:
    """Shift-add of the partials: ``sum_k 2^{shifts[k]} * partials[k]``.

    ``partials`` is a sequence of tensors, or a tensor whose last dimension
    indexes ``k``.
    """
    if isinstance(partials, torch.Tensor):
        parts = [partials[..., k] for k in range(partials.shape[-1])]
    else:
        parts = [as_int64(p) for p in partials]
    if len(parts) != len(shifts):
        raise ValueError(f"{len(parts)} partials but {len(shifts)} shifts")
    total = torch.zeros_like(as_int64(parts[0]))
    for p, s in zip(parts, shifts, strict=True):
        total = total + (as_int64(p) << s)
    return total


def round_shift(x, shift: int, rounding: str) -> torch.Tensor:
    """Arithmetic right shift by ``shift`` with the given rounding.

    * ``floor``: ``x >> shift`` (toward minus infinity);
    * ``half_up``: to nearest, ties away from zero;
    * ``half_even``: to nearest, ties to the even result.
    """
    x = as_int64(x)
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {ROUNDINGS}, not {rounding!r}")
    if shift == 0:
        return x.clone()
    q = x >> shift
    if rounding == "floor":
        return q
    r = x - (q << shift)             # remainder in [0, 2^shift)
    half = 1 << (shift - 1)
    if rounding == "half_up":
        up = (r > half) | ((r == half) & (x >= 0))
    else:
        up = (r > half) | ((r == half) & ((q & 1) == 1))
    return q + up.to(torch.int64)


def saturate(x, out_bits: int) -> torch.Tensor:
    lo, hi = W.twos_range(out_bits)
    return torch.clamp(as_int64(x), lo, hi)


def requantize(x, out_bits: int, shift: int, rounding: str) -> torch.Tensor:
    """Output requantization: round-shift, then saturate to signed ``out_bits``.

    ``out_bits = 0`` is full precision: the value passes unchanged (shift must be 0).
    """
    if out_bits == 0:
        if shift:
            raise ValueError("full precision (out_bits = 0) takes no shift")
        return as_int64(x).clone()
    return saturate(round_shift(x, shift, rounding), out_bits)
