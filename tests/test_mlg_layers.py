# SPDX-License-Identifier: Apache-2.0
"""MLG layers: quantizer, level rule, and float generation == scales x integer golden model.

The contract (golden/mlg.py): for every layer type, ``scale * full_precision(cfg, codes)``
equals the layer's generated float weight up to float32 rounding, where the codes are
the very integers the float forward pass rounded to.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from golden.arith import odd_value
from golden.generate import full_precision
from golden.mlg import (
    ExportError,
    MLGConv2d,
    MLGLinear,
    QuantLinear,
    generation_levels,
    ortho_loss,
    quantize,
    quantize_codes,
)

SEED = 1234


def _latent(shape, seed, scale=0.5):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g) * scale


# ---------------------------------------------------------------------------------
# quantizer
# ---------------------------------------------------------------------------------
@pytest.mark.parametrize("bits", [2, 3, 4, 6, 8, 12, 16], ids=lambda b: f"q{b}")
def test_quantizer_matches_paper_formula(bits):
    x = _latent((257,), SEED + bits, 1.5)
    t = torch.tanh(x).double()
    r = t.abs().max()
    n = (1 << bits) - 1
    c = torch.round(n * (t / (2 * r) + 0.5))
    expect = (r / n) * (2 * c - n)
    got = quantize(x, bits).double()
    assert torch.allclose(got, expect, rtol=0, atol=4 * r.item() * 2 ** -23)
    codes, scale = quantize_codes(x, bits)
    assert codes.min() >= 0 and codes.max() <= n
    m = odd_value(codes, bits)
    assert bool((m % 2 != 0).all()), "every code stands for an odd integer (no zero level)"
    assert torch.allclose(scale * m.double(), got, rtol=0, atol=4 * r.item() * 2 ** -23)
    # the largest |x| reaches the top / bottom code
    assert int(codes[x.abs().argmax()]) in (0, n)


def test_quantizer_round_half_even():
    # t/(2r)+0.5 = 0.5 for t = 0: n * 0.5 = 1.5 for 2 bits -> round half to even -> 2
    x = torch.tensor([0.0, 1.0, -1.0])
    codes, _ = quantize_codes(x, 2)
    assert codes.tolist() == [2, 3, 0]


def test_quantizer_one_bit_is_odd_mapping_of_sign_mean():
    x = _latent((64,), SEED)
    x[3] = 0.0
    e = x.abs().mean()
    got = quantize(x, 1)
    expect = torch.where(x >= 0, e, -e)          # sign * mean|x|, +E for an exact zero
    assert torch.allclose(got, expect)
    codes, scale = quantize_codes(x, 1)
    assert torch.allclose(scale * odd_value(codes, 1).float(), got)


def test_quantizer_float_width():
    x = _latent((32,), SEED, 2.0)
    t = torch.tanh(x)
    assert torch.allclose(quantize(x, 32), t / t.abs().max())
    with pytest.raises(ExportError, match="32"):
        quantize_codes(x, 32)


@pytest.mark.parametrize("bits", [1, 4], ids=["q1", "q4"])
def test_quantizer_straight_through_gradient_clamped(bits):
    x = _latent((50,), SEED, 0.3).requires_grad_(True)
    g = torch.linspace(-5, 5, 50)
    (quantize(x, bits) * g).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert bool((x.grad != 0).any())
    if bits == 4:
        # d/dx through tanh/(2r) then STE clamped to [-1, 1], then * 2r
        t = torch.tanh(x.detach())
        r = t.abs().max()
        expect = (g * 2 * r).clamp(-1, 1) * (1 - t * t) / (2 * r)
        assert torch.allclose(x.grad, expect, atol=1e-6)


# ---------------------------------------------------------------------------------
# level rule of the MLG reference implementation
# ---------------------------------------------------------------------------------
@pytest.mark.parametrize("p,q,K,bi,bo,expect", [
    (64, 64, 9, 2, 44, (2, 44)),     # both levels
    (64, 3, 9, 2, 44, (2, 0)),       # stem 3->64: min(64, 27) <= 44 -> intra-only
    (128, 64, 1, 2, 44, (0, 44)),    # 1x1: intra never on
    (44, 64, 9, 2, 44, (2, 0)),      # Bo must be < min(p, qK)
    (64, 2, 9, 2, 8, (0, 8)),        # Bi must be < min(q, K)
    (10, 512, 1, 2, 44, (0, 0)),     # a small classifier: nothing saves
    (32, 1, 9, 2, 44, (0, 0)),       # depthwise: nothing saves
    (64, 64, 9, 0, 0, (0, 0)),       # both off on request
], ids=["both", "stem", "conv1x1", "bo_too_big", "bi_too_big", "classifier", "depthwise",
        "off"])
def test_generation_levels(p, q, K, bi, bo, expect):
    assert generation_levels(p, q, K, bi, bo) == expect


# ---------------------------------------------------------------------------------
# every layer type: float weight == scale x integer golden generation
# ---------------------------------------------------------------------------------
MLG = dict(qb=3, qu=6, qv=3)
LAYERS = {
    "conv3x3_both": lambda: MLGConv2d(8, 12, 3, padding=1, base_in=2, base_out=5, **MLG),
    "conv3x3_intra_only_stem": lambda: MLGConv2d(3, 16, 3, padding=1, base_in=2, base_out=44,
                                                 **MLG),
    "conv3x3_cross_only": lambda: MLGConv2d(8, 12, 3, padding=1, base_in=0, base_out=5, **MLG),
    "conv3x3_no_level": lambda: MLGConv2d(4, 6, 3, base_in=0, base_out=0, **MLG),
    "conv1x1_cross": lambda: MLGConv2d(16, 24, 1, base_in=2, base_out=7, **MLG),
    "conv_strided": lambda: MLGConv2d(8, 10, 3, stride=2, padding=1, base_in=2, base_out=4,
                                      **MLG),
    "conv_grouped": lambda: MLGConv2d(8, 12, 3, padding=1, groups=2, base_in=2, base_out=5,
                                      bias=True, **MLG),
    "conv_depthwise_cross": lambda: MLGConv2d(12, 12, 3, padding=1, groups=12, base_in=2,
                                              base_out=4, **MLG),
    "conv5x5_dilated": lambda: MLGConv2d(6, 9, 5, padding=4, dilation=2, base_in=3,
                                         base_out=4, **MLG),
    "conv_bi1_bo1": lambda: MLGConv2d(8, 12, 3, padding=1, base_in=1, base_out=1, **MLG),
    "conv_q1": lambda: MLGConv2d(8, 12, 3, padding=1, base_in=2, base_out=5, qb=1, qu=1, qv=1),
    "conv_q16": lambda: MLGConv2d(8, 12, 3, padding=1, base_in=2, base_out=5, qb=16, qu=16,
                                  qv=16),
    "conv_mixed_bits": lambda: MLGConv2d(8, 12, 3, padding=1, base_in=2, base_out=5, qb=2,
                                         qu=8, qv=5),
    "linear_cross": lambda: MLGLinear(20, 15, bias=True, base_in=2, base_out=6, **MLG),
    "linear_no_level": lambda: MLGLinear(20, 15, base_in=2, base_out=0, **MLG),
}


def _randomize(layer, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.7)


@pytest.mark.parametrize("name", list(LAYERS))
def test_float_weight_equals_scaled_integer_generation(name):
    layer = LAYERS[name]()
    _randomize(layer, SEED)
    w = layer.generated_weight().detach().double()
    cfg = layer.generator_config()
    codes, scales = layer.codes()
    assert set(codes) == set(cfg.code_shapes)
    for k, shape in cfg.code_shapes.items():
        assert tuple(codes[k].shape) == shape
    w_int = full_precision(cfg, codes).reshape(layer.weight_shape)
    assert torch.equal(w_int, layer.integer_weight())
    scale = layer.scale()
    assert scale == pytest.approx(float(torch.tensor(list(scales.values())).double().prod()))
    exact = scale * w_int.double()
    # float32 rounding: each generated value is a sum of products of float32 values;
    # bound the error by a few ulps of the sum of absolute terms
    t = layer.quantized()
    a = {k: v.detach().double().abs() for k, v in t.items()}
    w1_abs = a["U"] @ a["B"] if "U" in a else a["B"]
    abs_sum = a["V"] @ w1_abs.reshape(layer.Bo, -1) if "V" in a else w1_abs
    bound = 64 * 2 ** -24 * abs_sum.reshape(w.shape) + 1e-30
    err = (w - exact).abs()
    assert bool((err <= bound).all()), f"max error {err.max():.3g} (bound {bound.max():.3g})"


@pytest.mark.parametrize("name", ["conv_strided", "conv_grouped", "conv5x5_dilated",
                                  "conv_depthwise_cross", "linear_cross"])
def test_forward_uses_generated_weight(name):
    layer = LAYERS[name]()
    _randomize(layer, SEED + 1)
    if isinstance(layer, MLGLinear):
        x = torch.randn(3, layer.in_features, generator=torch.Generator().manual_seed(2))
        ref = F.linear(x, layer.generated_weight(), layer.bias)
    else:
        x = torch.randn(2, layer.in_channels, 9, 9, generator=torch.Generator().manual_seed(2))
        ref = F.conv2d(x, layer.generated_weight(), layer.bias, layer.stride, layer.padding,
                       layer.dilation, layer.groups)
    assert torch.equal(layer(x), ref)


def test_generated_weight_is_differentiable():
    layer = LAYERS["conv3x3_both"]()
    x = torch.randn(2, 8, 6, 6, generator=torch.Generator().manual_seed(3))
    layer(x).square().sum().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert bool((p.grad != 0).any()), name


def test_export_refuses_float_width():
    layer = MLGConv2d(8, 12, 3, base_in=2, base_out=5, qb=32, qu=6, qv=3)
    with pytest.raises(ExportError, match="qb = 32"):
        layer.generator_config()
    with pytest.raises(ExportError):
        layer.codes()


def test_quant_linear_is_8bit_dorefa():
    lin = QuantLinear(16, 4, bits=8)
    w = lin.quantized_weight()
    codes, scale = quantize_codes(lin.weight, 8)
    assert torch.allclose(w.double(), scale * odd_value(codes, 8).double(), atol=1e-7)
    float_lin = QuantLinear(16, 4, bits=16)     # >= 16 bits: float, as the reference
    assert float_lin.quantized_weight() is float_lin.weight


# ---------------------------------------------------------------------------------
# orthonormality regularization
# ---------------------------------------------------------------------------------
def test_ortho_loss_zero_for_orthonormal_and_positive_otherwise():
    layer = MLGConv2d(8, 12, 3, base_in=2, base_out=5, **MLG)
    with torch.no_grad():
        eye_b = torch.zeros(5, 2, 9)
        eye_b[:, 0, 0] = 1
        eye_b[:, 1, 1] = 1
        layer.basis.copy_(eye_b.reshape(5, 2, 3, 3))
        u = torch.zeros(5, 8, 2)
        u[:, 0, 0] = 3.0           # columns orthogonal; normalization makes them unit
        u[:, 1, 1] = -2.0
        layer.coeff_in.copy_(u)
        v = torch.zeros(12, 5)
        v[torch.arange(5), torch.arange(5)] = 0.5
        layer.coeff_out.copy_(v)
    assert layer.ortho_loss().item() == pytest.approx(0.0, abs=1e-10)
    _randomize(layer, SEED)
    assert layer.ortho_loss().item() > 0


@pytest.mark.parametrize("kw", [dict(base_in=1, base_out=5), dict(base_in=1, base_out=0),
                                dict(base_in=0, base_out=5), dict(base_in=2, base_out=0)],
                         ids=["bi1", "bi1_intra_only", "cross_only", "intra_only"])
def test_ortho_loss_every_form_no_crash(kw):
    layer = MLGConv2d(8, 12, 3, **kw, **MLG)
    _randomize(layer, SEED)
    loss = ortho_loss(torch.nn.Sequential(layer))
    assert torch.isfinite(loss)
    if layer.level2 or layer.base_in > 1:
        assert loss.item() > 0
        loss.backward()
        assert layer.basis.grad is not None or layer.coeff_out.grad is not None
