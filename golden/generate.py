# SPDX-License-Identifier: Apache-2.0
"""Whole-layer integer generation, the golden model of the generator RTL.

``W1[o, c, t] = sum_i m_U[o, c, i] * m_B[o, i, t]``   (level 1, intra-kernel)
``W [j, c, t] = sum_o m_V[j, o]    * W1[o, c, t]``    (level 2, cross-kernel)

computed exactly in int64 (``torch.einsum`` does not support integer tensors
on every backend, so the sums are written as broadcast products).
"""

from __future__ import annotations

from typing import Mapping

import torch

from insitugen.config import GeneratorConfig
from insitugen.order import stream_permutation

from .arith import (
    as_int64,
    odd_code,
    odd_value,
    recombine,
    requantize,
    slice_operand,
    sliced_partials,
)


def level1(cfg: GeneratorConfig, codes: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """``W1`` as ``[Bo, q, K]`` int64 (``m_B`` when level 1 is off)."""
    mB = odd_value(codes["B"], cfg.qb)
    if not cfg.level1:
        return mB
    mU = odd_value(codes["U"], cfg.qu)                     # [Bo, q, Bi]
    return (mU.unsqueeze(-1) * mB.unsqueeze(1)).sum(dim=2)  # [Bo, q, Bi, K] -> [Bo, q, K]


def full_precision(cfg: GeneratorConfig, codes: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Full-precision integer weights ``W`` as ``[p, q, K]`` int64."""
    w1 = level1(cfg, codes)
    if not cfg.level2:
        return w1
    mV = odd_value(codes["V"], cfg.qv)                      # [p, Bo]
    # chunk over output channels to bound memory: [pc, Bo, q*K]
    w1f = w1.reshape(cfg.Bo, -1)
    out = torch.empty((cfg.out_channels, w1f.shape[1]), dtype=torch.int64)
    chunk = max(1, (1 << 24) // max(1, w1f.numel()))
    for j0 in range(0, cfg.out_channels, chunk):
        v = mV[j0:j0 + chunk]
        out[j0:j0 + chunk] = (v.unsqueeze(-1) * w1f.unsqueeze(0)).sum(dim=1)
    return out.reshape(cfg.out_channels, cfg.in_channels, cfg.K)


def generate(cfg: GeneratorConfig, codes: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The weights the generator streams out: full precision, requantized to
    ``out_bits`` with ``shift`` and ``rounding``, shaped ``cfg.weight_shape``."""
    w = requantize(full_precision(cfg, codes), cfg.out_bits, cfg.shift, cfg.rounding)
    return w.reshape(cfg.weight_shape)


def generate_stream(cfg: GeneratorConfig, codes: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """:func:`generate` flat, in the order the generator streams it (``cfg.order``:
    ``oihw``, or tile-major ``[tile][row][lane]`` for ``tile``; :mod:`insitugen.order`)."""
    w = generate(cfg, codes).reshape(-1)
    perm = stream_permutation(cfg.order, cfg.out_channels, cfg.in_channels * cfg.K, cfg.lanes)
    return w[torch.from_numpy(perm)]


def vb_products(cfg: GeneratorConfig, codes: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The shared products of the ``vb`` order, ``m_V[j,o] * m_B[o,i,t]``, as their
    ``cfg.vb_bits``-bit odd codes, ``[p, Bo, Bi, K]`` int64 (both levels on)."""
    mV = odd_value(codes["V"], cfg.qv)                       # [p, Bo]
    mB = odd_value(codes["B"], cfg.qb)                       # [Bo, Bi, K]
    vb = mV[:, :, None, None] * mB[None]                     # odd integers
    return odd_code(vb, cfg.vb_bits)


def generate_sliced(cfg: GeneratorConfig, codes: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The same full-precision ``W`` computed the way the engine does in ``cfg``'s
    product order: every operand sliced for ``engine_bits``, partials recombined by
    shift-add. Must equal :func:`full_precision` exactly (a test checks it).

    ``vb`` order (both levels on): ``W[j,c,t] = sum_{o,i} m_U[o,c,i] * VB[j,o,i,t]``,
    partials of U slices x VB slices summed over ``(o, i)``."""
    if cfg.level1 and cfg.level2 and cfg.product_order == "vb":
        u = as_int64(codes["U"])                              # [Bo, q, Bi]
        vb = vb_products(cfg, codes)                         # [p, Bo, Bi, K]
        u_s = slice_operand(u, cfg.u_operand)
        x_s = slice_operand(vb, cfg.vb_operand)
        parts, shifts = [], []
        for uj, ou in zip(u_s, cfg.u_operand.offsets, strict=True):
            for xl, ox in zip(x_s, cfg.vb_operand.offsets, strict=True):
                # [1, Bo, q, Bi, 1] x [p, Bo, 1, Bi, K] summed over Bo and Bi -> [p, q, K]
                parts.append((uj[None, :, :, :, None] * xl[:, :, None, :, :]).sum(dim=(1, 3)))
                shifts.append(ou + ox)
        return recombine(parts, shifts)
    if cfg.level1:
        # partials over Bi: a = U codes [Bo, q, Bi, 1], x = B codes [Bo, 1, Bi, K]
        u = as_int64(codes["U"]).unsqueeze(-1)
        b = as_int64(codes["B"]).unsqueeze(1)
        parts = sliced_partials(u, b, cfg.u_operand, cfg.b_operand, dim=2)
        shifts = [oj + pl for oj in cfg.u_operand.offsets for pl in cfg.b_operand.offsets]
        w1 = recombine(parts, shifts)                        # [Bo, q, K]
        w1_operand_input = w1
    else:
        w1 = odd_value(codes["B"], cfg.qb)
        w1_operand_input = as_int64(codes["B"])               # odd codes, sliced as codes
    if not cfg.level2:
        return w1
    v = as_int64(codes["V"]).reshape(cfg.out_channels, cfg.Bo, 1)
    x = w1_operand_input.reshape(1, cfg.Bo, -1)
    parts = sliced_partials(v, x, cfg.v_operand, cfg.w1_operand, dim=1)
    shifts = [oj + pl for oj in cfg.v_operand.offsets for pl in cfg.w1_operand.offsets]
    w = recombine(parts, shifts)
    return w.reshape(cfg.out_channels, cfg.in_channels, cfg.K)

