# SPDX-License-Identifier: Apache-2.0
"""The two product orders and the register stages, on the golden tier: the vb order's
slicing (shared V*B products as odd codes, U x VB partials) and the w1 order's both equal
the direct integer model on every degenerate form and code corner."""

from __future__ import annotations

import random

import pytest
import torch
from test_synth import _mac_bench

from golden import codes as C
from golden import generate as G
from golden.arith import odd_value
from hdl.reference import ReferenceEngine
from insitugen.config import GeneratorConfig

FORMS = {
    "default_shape_small": dict(out_channels=6, in_channels=5),
    "intra_off": dict(out_channels=6, in_channels=5, base_in=0),
    "cross_off": dict(out_channels=6, in_channels=5, base_out=0),
    "k1_bi1": dict(out_channels=6, in_channels=5, kernel=1, base_in=1),
    "bo1": dict(out_channels=5, in_channels=4, base_out=1),
    "one_bit_vb": dict(out_channels=4, in_channels=3, qb=1, qv=1, engine_bits=2),
    "engine2_wide": dict(out_channels=4, in_channels=3, qb=5, qu=7, qv=4, engine_bits=2),
    "engine8_unsliced": dict(out_channels=4, in_channels=3, qb=4, qu=8, qv=4, engine_bits=8),
}


@pytest.mark.parametrize("order", ["vb", "w1"])
@pytest.mark.parametrize("corner", C.CORNERS)
@pytest.mark.parametrize("form", sorted(FORMS), ids=sorted(FORMS))
def test_sliced_orders_equal_direct(form, corner, order):
    cfg = GeneratorConfig(base_out=3, product_order=order).replace(**FORMS[form])
    codes = C.random_codes(cfg, seed=11, corner=corner)
    assert torch.equal(G.generate_sliced(cfg, codes), G.full_precision(cfg, codes)), \
        f"{form}/{corner}/{order} seed 11"


def test_vb_codes_stand_for_the_products():
    """Each shared product's odd code decodes to m_V * m_B exactly, at the extremes too."""
    cfg = GeneratorConfig(out_channels=3, in_channels=2, base_out=2, qb=3, qv=3)
    for corner in ("max", "min", "alternating"):
        codes = C.random_codes(cfg, seed=3, corner=corner)
        vb = G.vb_products(cfg, codes)
        assert int(vb.min()) >= 0 and int(vb.max()) < (1 << cfg.vb_bits)
        mV = odd_value(codes["V"], cfg.qv)
        mB = odd_value(codes["B"], cfg.qb)
        assert torch.equal(odd_value(vb, cfg.vb_bits), mV[:, :, None, None] * mB[None])


def test_operand_registered_reference_engine_is_exact():
    """The delay baseline of synth.forms: the reference engine with operand registers sums
    exactly like the plain one, under random output stalls."""
    rng = random.Random(5)
    s, lanes = 3, 3
    lo, hi = -(1 << s), (1 << s) - 1
    eng = ReferenceEngine(s, lanes, 10, operand_registers=True)
    beats, expect = [], []
    for _ in range(8):
        n = rng.randrange(1, 4)
        group = [[(rng.randint(lo, hi), rng.randint(lo, hi)) for _ in range(lanes)]
                 for _ in range(n)]
        beats += [(g, k == n - 1) for k, g in enumerate(group)]
        expect.append([sum(g[m][0] * g[m][1] for g in group) for m in range(lanes)])

    def set_eng(ctx, b):
        for m, (a, x) in enumerate(b[0]):
            ctx.set(eng.i.payload.a[m], a)
            ctx.set(eng.i.payload.x[m], x)
        ctx.set(eng.i.payload.last, b[1])
    _mac_bench(eng, beats, expect, set_eng,
               lambda ctx: [ctx.get(eng.o.payload[m]) for m in range(lanes)])
