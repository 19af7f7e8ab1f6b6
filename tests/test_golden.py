# SPDX-License-Identifier: Apache-2.0
"""The identities of the arithmetic (README) hold: exhaustively for small widths, on random
large ones.

Seeds are fixed per test and printed in the assertion message so a failure replays.
"""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch

from golden import arith as A
from golden import codes as C
from golden import generate as G
from insitugen import widths as W
from insitugen.config import ROUNDINGS, GeneratorConfig, RecombinationConfig


def compositions(total: int, max_part: int):
    """Every ordered split of ``total`` bits into slices of at most ``max_part`` bits."""
    if total == 0:
        yield ()
        return
    for first in range(1, min(total, max_part) + 1):
        for rest in compositions(total - first, max_part):
            yield (first,) + rest


# ---- odd code mapping and slicing -------------------------------------------------------

@pytest.mark.parametrize("bits", range(1, 11))
def test_odd_value_range_and_inverse(bits):
    n = torch.arange(1 << bits)
    m = A.odd_value(n, bits)
    assert int(m.min()) == -((1 << bits) - 1) and int(m.max()) == (1 << bits) - 1
    assert bool(((m % 2) != 0).all()), "every code must map to an odd integer"
    assert torch.equal(A.odd_code(m, bits), n)


@pytest.mark.parametrize("bits", range(1, 9))
def test_odd_slicing_identity_exhaustive(bits):
    n = torch.arange(1 << bits)
    for widths in compositions(bits, 4):
        slices = A.slice_odd(n, widths)
        total = sum(s << o for s, o in zip(slices, W.slice_offsets(widths), strict=True))
        assert torch.equal(total, A.odd_value(n, bits)), f"widths {widths}"


@pytest.mark.parametrize("bits", range(1, 11))
def test_twos_slicing_identity_exhaustive(bits):
    lo, hi = W.twos_range(bits)
    x = torch.arange(lo, hi + 1)
    for widths in compositions(bits, 4):
        slices = A.slice_twos(x, widths)
        for s, (slo, shi) in zip(slices, W.slice_ranges("twos", widths), strict=True):
            assert slo <= int(s.min()) and int(s.max()) <= shi, f"slice out of range, {widths}"
        total = sum(s << o for s, o in zip(slices, W.slice_offsets(widths), strict=True))
        assert torch.equal(total, x), f"widths {widths}"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_slicing_identities_random_large(seed):
    gen = torch.Generator().manual_seed(seed)
    for bits in (16, 24, 31, 40, 48):
        for s in (2, 3, 5, 8):
            widths = W.default_slice_widths(bits, s)
            n = torch.randint(0, 1 << bits, (2000,), generator=gen)
            total = sum(v << o for v, o in zip(A.slice_odd(n, widths), W.slice_offsets(widths),
                                               strict=True))
            assert torch.equal(total, A.odd_value(n, bits)), f"seed {seed} odd {bits}/{s}"
            x = torch.randint(-(1 << (bits - 1)), 1 << (bits - 1), (2000,), generator=gen)
            total = sum(v << o for v, o in zip(A.slice_twos(x, widths), W.slice_offsets(widths),
                                               strict=True))
            assert torch.equal(total, x), f"seed {seed} twos {bits}/{s}"


# ---- recombination of sliced products and dot products ----------------------------------

@pytest.mark.parametrize("a_enc,x_enc", [("odd", "odd"), ("odd", "twos"), ("twos", "twos")])
def test_sliced_product_recombination_exhaustive(a_enc, x_enc):
    a_bits, x_bits = 4, 5
    a_codes = torch.arange(1 << a_bits) if a_enc == "odd" else torch.arange(-8, 8)
    x_vals = torch.arange(1 << x_bits) if x_enc == "odd" else torch.arange(-16, 16)
    a_grid, x_grid = torch.meshgrid(a_codes, x_vals, indexing="ij")
    for aw in compositions(a_bits, 3):
        for xw in [(2, 3), (3, 2), (1, 2, 2), (5,)]:
            a_op = W.SlicedOperand(a_enc, a_bits, aw)
            x_op = W.SlicedOperand(x_enc, x_bits, xw)
            rw = W.recombination_widths(a_op, x_op)
            parts = A.sliced_partials(a_grid, x_grid, a_op, x_op)
            for p, (lo, hi) in zip(parts, rw.partial_ranges, strict=True):
                assert lo <= int(p.min()) and int(p.max()) <= hi
            got = A.recombine(parts, rw.shifts)
            want = A.operand_value(a_grid, a_op) * A.operand_value(x_grid, x_op)
            assert torch.equal(got, want), f"{a_enc}{aw} x {x_enc}{xw}"
            assert W.twos_range(rw.out_bits)[0] <= int(got.min())
            assert int(got.max()) <= W.twos_range(rw.out_bits)[1]


@pytest.mark.parametrize("seed", [11, 12])
def test_sliced_dot_product_recombination_random(seed):
    gen = torch.Generator().manual_seed(seed)
    cases = [(6, 11, 3, 44), (8, 20, 4, 128), (7, 13, 2, 9), (16, 30, 8, 512)]
    for a_bits, x_bits, s, terms in cases:
        a_op = W.SlicedOperand("odd", a_bits, W.default_slice_widths(a_bits, s))
        x_op = W.SlicedOperand("twos", x_bits, W.default_slice_widths(x_bits, s))
        rw = W.recombination_widths(a_op, x_op, terms=terms)
        a = torch.randint(0, 1 << a_bits, (64, terms), generator=gen)
        x = torch.randint(-(1 << (x_bits - 1)), 1 << (x_bits - 1), (64, terms), generator=gen)
        got = A.recombine(A.sliced_partials(a, x, a_op, x_op, dim=1), rw.shifts)
        want = (A.odd_value(a, a_bits) * x).sum(dim=1)
        assert torch.equal(got, want), f"seed {seed}: {a_bits}x{x_bits} on {s}-bit engine"


def test_recombination_widths_never_overflow_at_rails():
    """Any partials within partial_bits (not only consistent ones) fit out_bits."""
    for cfg in [RecombinationConfig(), RecombinationConfig(a_bits=8, x_bits=8, engine_bits=2),
                RecombinationConfig(a_bits=6, x_bits=11, x_encoding="twos", terms=44),
                RecombinationConfig(a_bits=6, a_slices=(2, 3, 1), x_bits=5, x_encoding="twos",
                                    engine_bits=3)]:
        rw = cfg.widths
        lo, hi = W.twos_range(rw.partial_bits)
        for rail in (lo, hi):
            got = int(A.recombine([torch.tensor(rail)] * rw.count, rw.shifts))
            olo, ohi = W.twos_range(rw.out_bits)
            assert olo <= got <= ohi
        # and the true result range is inside as well
        assert W.twos_range(rw.out_bits)[0] <= rw.result_range[0]
        assert rw.result_range[1] <= W.twos_range(rw.out_bits)[1]


def test_serial_order_is_msb_first():
    rw = RecombinationConfig(a_bits=6, x_bits=7, x_encoding="twos", engine_bits=3).widths
    shifts = [rw.shifts[k] for k in rw.serial_order]
    assert shifts == sorted(shifts, reverse=True)
    assert sorted(rw.serial_order) == list(range(rw.count))


# ---- requantization -----------------------------------------------------------------------

def _reference_round(x: int, shift: int, rounding: str) -> int:
    """Independent reference with exact fractions."""
    v = Fraction(x, 1 << shift)
    fl = v.numerator // v.denominator
    frac = v - fl
    if rounding == "floor" or frac == 0:
        return fl
    if frac > Fraction(1, 2):
        return fl + 1
    if frac < Fraction(1, 2):
        return fl
    if rounding == "half_up":                 # ties away from zero
        return fl + 1 if x > 0 else fl
    return fl if fl % 2 == 0 else fl + 1       # half_even


@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_round_shift_exhaustive(rounding):
    x = torch.arange(-600, 601)
    for shift in range(0, 7):
        got = A.round_shift(x, shift, rounding)
        want = torch.tensor([_reference_round(int(v), shift, rounding) for v in x])
        assert torch.equal(got, want), f"{rounding} shift {shift}"


@pytest.mark.parametrize("out_bits", [2, 3, 8])
def test_requantize_saturates_at_both_rails(out_bits):
    lo, hi = W.twos_range(out_bits)
    x = torch.tensor([-(1 << 20), -1000, lo * 4 - 1, lo * 4, hi * 4, hi * 4 + 3, 1000, 1 << 20])
    got = A.requantize(x, out_bits, 2, "half_even")
    assert int(got.min()) == lo and int(got.max()) == hi
    assert torch.equal(A.requantize(x, 0, 0, "floor"), x)


# ---- whole-layer generation -----------------------------------------------------------------

GEN_CASES = {
    "default_shape_small": dict(out_channels=6, in_channels=5),
    "intra_off": dict(out_channels=6, in_channels=5, base_in=0),
    "cross_off": dict(out_channels=6, in_channels=5, base_out=0),
    "both_off": dict(out_channels=4, in_channels=3, base_in=0, base_out=0),
    "k1": dict(out_channels=6, in_channels=5, kernel=1, base_in=1, base_out=3),
    "linear": dict(out_channels=7, in_channels=10, kernel=1, layer="linear", base_in=1, base_out=4),
    "bi1_bo1": dict(out_channels=5, in_channels=4, base_in=1, base_out=1),
    "wide_codes": dict(out_channels=6, in_channels=5, qb=8, qu=7, qv=5, engine_bits=2),
    "one_bit_codes": dict(out_channels=6, in_channels=5, qb=1, qu=1, qv=1, engine_bits=4),
}


@pytest.mark.parametrize("corner", C.CORNERS)
@pytest.mark.parametrize("case", sorted(GEN_CASES), ids=sorted(GEN_CASES))
def test_sliced_generation_equals_direct(case, corner):
    cfg = GeneratorConfig(**{"base_out": 3, **GEN_CASES[case]})
    codes = C.random_codes(cfg, seed=7, corner=corner)
    direct = G.full_precision(cfg, codes)
    assert torch.equal(G.generate_sliced(cfg, codes), direct), f"{case}/{corner} seed 7"
    lo, hi = cfg.acc_range
    assert lo <= int(direct.min()) and int(direct.max()) <= hi


@pytest.mark.parametrize("case", sorted(GEN_CASES), ids=sorted(GEN_CASES))
def test_generation_matches_float_recomputation(case):
    """Golden integer generation x scales == an independent float MLG recomputation."""
    cfg = GeneratorConfig(**{"base_out": 3, **GEN_CASES[case]})
    codes = C.random_codes(cfg, seed=3)
    scales = {"B": 0.37, "U": 0.052, "V": 0.11}
    fl = {k: (2.0 * v.double() - ((1 << cfg.code_bits[k]) - 1)) * scales[k]
          for k, v in codes.items()}
    w1 = torch.einsum("oci,oit->oct", fl["U"], fl["B"]) if cfg.level1 else fl["B"]
    w = torch.einsum("jo,oct->jct", fl["V"], w1) if cfg.level2 else w1
    total_scale = (scales["B"] * (scales["U"] if cfg.level1 else 1)
                   * (scales["V"] if cfg.level2 else 1))
    integer = G.full_precision(cfg, codes).double() * total_scale
    assert torch.allclose(integer, w, rtol=1e-12, atol=1e-9)


def test_extreme_codes_fit_derived_widths_default():
    cfg = GeneratorConfig()
    # the MLG paper: level 1 needs qb + qu + log2(Bi) = 11 bits, level 2 adds qv + log2(Bo)
    assert (cfg.w1_bits, cfg.acc_bits) == (11, 20)
    small = cfg.replace(out_channels=4, in_channels=3)
    for corner in ("max", "min", "alternating"):
        w = G.full_precision(small, C.random_codes(small, 0, corner))
        lo, hi = W.twos_range(cfg.acc_bits)
        assert lo <= int(w.min()) and int(w.max()) <= hi
    wmax = G.full_precision(small, C.random_codes(small, 0, "max"))
    assert int(wmax.max()) == cfg.acc_range[1]       # the bound is reached: it is tight


def test_generate_requantized_shape_and_range():
    cfg = GeneratorConfig(out_channels=6, in_channels=5, out_bits=4, shift=6)
    w = G.generate(cfg, C.random_codes(cfg, 5))
    assert tuple(w.shape) == (6, 5, 3, 3) and w.dtype == torch.int64
    assert int(w.min()) >= -8 and int(w.max()) <= 7
    lin = GeneratorConfig(out_channels=3, in_channels=4, kernel=1, layer="linear", base_in=0,
                          base_out=2)
    assert tuple(G.generate(lin, C.random_codes(lin, 5)).shape) == (3, 4)
