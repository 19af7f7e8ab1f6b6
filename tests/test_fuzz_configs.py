# SPDX-License-Identifier: Apache-2.0
"""Property tests over the whole valid config space (hypothesis).

* Random GeneratorConfig / RecombinationConfig dicts construct, and the derived
  widths hold what the golden model computes at the extreme codes.
* Random RecombinationConfigs elaborate and their RecombinationUnit matches the
  golden recombination on Amaranth's simulator for a few random vectors.
"""

from __future__ import annotations

import random

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from golden import arith as G
from golden.generate import full_precision
from insitugen import widths as W
from insitugen.config import (
    MAX_DATAPATH_BITS,
    ROUNDINGS,
    GeneratorConfig,
    RecombinationConfig,
    config_from_dict,
)
from insitugen.errors import ConfigError
from insitugen.schedule import Schedule

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---- strategies ---------------------------------------------------------------------------

@st.composite
def generator_dicts(draw):
    layer = draw(st.sampled_from(["conv", "linear"]))
    out_bits = draw(st.sampled_from([0] + list(range(2, 33))))
    lanes = draw(st.integers(1, 1024))
    return {
        "block": "generator",
        "out_channels": draw(st.integers(1, 4096)),
        "in_channels": draw(st.integers(1, 4096)),
        "layer": layer,
        "kernel": 1 if layer == "linear" else draw(st.integers(1, 11)),
        "base_in": draw(st.integers(0, 64)),
        "base_out": draw(st.one_of(st.integers(0, 64), st.integers(0, 4096))),
        "qb": draw(st.integers(1, 16)),
        "qu": draw(st.integers(1, 16)),
        "qv": draw(st.integers(1, 16)),
        "engine_bits": draw(st.integers(1, 16)),
        "lanes": lanes,
        # 0 (auto), a divisor of lanes, or any width up to lanes (refused unless a divisor)
        "beat_weights": draw(st.one_of(st.just(0), st.sampled_from(
            [b for b in range(1, lanes + 1) if lanes % b == 0]), st.integers(1, lanes))),
        "out_bits": out_bits,
        "shift": 0 if out_bits == 0 else draw(st.integers(0, MAX_DATAPATH_BITS)),
        "rounding": draw(st.sampled_from(ROUNDINGS)),
        "recombination": draw(st.sampled_from(["fused", "separate"])),
    }


@st.composite
def slice_widths(draw, bits: int, engine_bits: int):
    """Default slices, or a random split of ``bits`` into parts of at most engine_bits."""
    if draw(st.booleans()):
        return []
    out, left = [], bits
    while left:
        w = draw(st.integers(1, min(engine_bits, left)))
        out.append(w)
        left -= w
    return out


@st.composite
def recombination_dicts(draw, max_bits: int = 32, max_terms: int = 1 << 20):
    eb = draw(st.integers(1, 16))
    d = {"block": "recombination", "engine_bits": eb}
    for op in ("a", "x"):
        bits = draw(st.integers(1, max_bits))
        d[f"{op}_bits"] = bits
        d[f"{op}_encoding"] = draw(st.sampled_from(["odd", "twos"]))
        d[f"{op}_slices"] = draw(slice_widths(bits, eb))
    d["terms"] = draw(st.one_of(st.integers(1, 4), st.integers(1, max_terms)))
    d["mode"] = draw(st.sampled_from(["parallel", "serial"]))
    na = len(d["a_slices"]) or len(W.default_slice_widths(d["a_bits"], eb))
    nx = len(d["x_slices"]) or len(W.default_slice_widths(d["x_bits"], eb))
    top = W.bits_for_count(na * nx) + 1 if d["mode"] == "parallel" else 4
    d["pipeline_stages"] = draw(st.integers(0, min(4, top)))
    need = W.recombination_widths(
        W.SlicedOperand(d["a_encoding"], d["a_bits"], tuple(d["a_slices"]) or
                        W.default_slice_widths(d["a_bits"], eb)),
        W.SlicedOperand(d["x_encoding"], d["x_bits"], tuple(d["x_slices"]) or
                        W.default_slice_widths(d["x_bits"], eb)), d["terms"]).partial_bits
    d["partial_bits"] = draw(st.sampled_from([0, 0, min(48, need + draw(st.integers(0, 3)))]))
    if d["partial_bits"] < need:
        d["partial_bits"] = 0
    return d


# ---- helpers ----------------------------------------------------------------------------------

def _check_operand(op: W.SlicedOperand, engine_bits: int):
    assert sum(op.widths) == op.bits, op
    assert all(1 <= w <= engine_bits for w in op.widths), op
    assert op.offsets == tuple(sum(op.widths[:j]) for j in range(op.count))


def _extreme_values(op: W.SlicedOperand) -> list[int]:
    """Operand values (codes for odd) that put every slice at each corner of its range."""
    if op.encoding == "odd":
        return [0, (1 << op.bits) - 1]
    lo, hi = W.twos_range(op.bits)
    return sorted({lo, hi, -1, 0})


def _value(v: int, op: W.SlicedOperand) -> int:
    return int(G.operand_value(v, op))


def _bits_of(lo: int, hi: int) -> int:
    """Fewest two's complement bits holding lo..hi, by counting up (independent of W)."""
    n = 1
    while not (-(1 << (n - 1)) <= lo and hi <= (1 << (n - 1)) - 1):
        n += 1
    return n


def _out_bits_by_hand(d: dict) -> int:
    """The recombination unit's result width from a config dict, without the width module's
    derivation: the partials' width is what the golden model's partials at the extreme codes
    need (or the dict's wider ``partial_bits``); the result must hold any partials of that
    width shifted by the slice offsets (running sums of the slice widths) and added."""
    ops, offsets = [], []
    for name in ("a", "x"):
        bits, eb = d[f"{name}_bits"], d["engine_bits"]
        widths = list(d[f"{name}_slices"]) or [eb] * (bits // eb) + [bits % eb] * (bits % eb > 0)
        ops.append(W.SlicedOperand(d[f"{name}_encoding"], bits, tuple(widths)))
        offsets.append([sum(widths[:j]) for j in range(len(widths))])
    need = 1
    for a in _extreme_values(ops[0]):
        for x in _extreme_values(ops[1]):
            for p in G.sliced_partials(a, x, ops[0], ops[1]):
                need = max(need, _bits_of(int(p) * d["terms"], int(p) * d["terms"]))
    pb = d["partial_bits"] or need
    weight = sum(1 << (oa + ox) for oa in offsets[0] for ox in offsets[1])
    return _bits_of(-(1 << (pb - 1)) * weight, ((1 << (pb - 1)) - 1) * weight)


# ---- generator configs ------------------------------------------------------------------------

@settings(max_examples=60, **SETTINGS)
@given(generator_dicts())
def test_generator_configs_construct_and_widths_hold(d):
    top = {"level1": d["base_in"] > 0, "level2": d["base_out"] > 0}
    if d["beat_weights"] and d["lanes"] % d["beat_weights"]:
        with pytest.raises(ConfigError, match="'beat_weights'.*does not divide lanes"):
            config_from_dict(d)
        return
    # Largest |W| at extreme codes, in Python ints (no overflow): the config must reject
    # exactly the configs whose weights need more than MAX_DATAPATH_BITS bits.
    mag = (1 << d["qb"]) - 1
    if top["level1"]:
        mag *= d["base_in"] * ((1 << d["qu"]) - 1)
    if top["level2"]:
        mag *= d["base_out"] * ((1 << d["qv"]) - 1)
    if W.signed_bits(-mag, mag) > MAX_DATAPATH_BITS:
        with pytest.raises(ConfigError, match="at most"):
            config_from_dict(d)
        return
    cfg = config_from_dict(d)
    assert isinstance(cfg, GeneratorConfig)
    assert config_from_dict(cfg.to_dict()) == cfg
    for op in (cfg.u_operand, cfg.b_operand, cfg.v_operand, cfg.w1_operand):
        _check_operand(op, cfg.engine_bits)
    assert cfg.acc_bits == W.signed_bits(-mag, mag)
    assert cfg.weight_bits == (cfg.out_bits or cfg.acc_bits)
    # the output beat: a divisor of lanes; the beats of a pass carry every weight once
    s = Schedule(cfg)
    assert cfg.lanes % s.beat == 0 and s.beat == (d["beat_weights"] or s.beat)
    assert s.n_beats == cfg.out_channels * -(-cfg.in_channels * cfg.K // s.beat)
    assert s.pass_period >= s.n_rounds * s.steps_per_round

    # Golden at extreme codes on a tiny shape with the same Bi / Bo: W1 and W fit.
    tiny = cfg.replace(out_channels=1, in_channels=1, kernel=1, layer="conv")
    shapes = tiny.code_shapes
    bits = tiny.code_bits
    maxc = {k: torch.full(s, (1 << bits[k]) - 1, dtype=torch.int64) for k, s in shapes.items()}
    neg = dict(maxc)
    # One factor at its minimum (code 0) makes every product term -max.
    first = "U" if "U" in shapes else "B"
    neg[first] = torch.zeros(shapes[first], dtype=torch.int64)
    hi = int(full_precision(tiny, maxc).max())
    lo = int(full_precision(tiny, neg).min())
    assert (lo, hi) == (-mag, mag)
    assert W.signed_bits(lo, hi) <= cfg.acc_bits
    lo_r, hi_r = cfg.acc_range
    assert lo_r <= lo and hi <= hi_r
    if cfg.level1:
        w1 = G.odd_value(torch.tensor([(1 << cfg.qu) - 1]), cfg.qu) * \
            G.odd_value(torch.tensor([(1 << cfg.qb) - 1]), cfg.qb) * cfg.Bi
        assert W.signed_bits(-int(w1), int(w1)) == cfg.w1_bits


# ---- recombination configs ---------------------------------------------------------------------

@settings(max_examples=60, **SETTINGS)
@given(recombination_dicts())
def test_recombination_configs_construct_and_widths_hold(d):
    out_bits = _out_bits_by_hand(d)
    try:
        cfg = config_from_dict(d)
    except ConfigError as e:
        # The only rejection the valid field ranges allow: a result wider than int64 carries.
        assert out_bits > MAX_DATAPATH_BITS and "at most" in str(e)
        return
    assert out_bits <= MAX_DATAPATH_BITS
    assert isinstance(cfg, RecombinationConfig)
    assert cfg.widths.out_bits == out_bits
    assert config_from_dict(cfg.to_dict()) == cfg
    _check_operand(cfg.a, cfg.engine_bits)
    _check_operand(cfg.x, cfg.engine_bits)
    wd = cfg.widths
    assert wd.count == cfg.a.count * cfg.x.count
    assert sorted(wd.serial_order) == list(range(wd.count))
    plo, phi = W.twos_range(wd.partial_bits)
    seen_lo = [float("inf")] * wd.count
    seen_hi = [float("-inf")] * wd.count
    for a in _extreme_values(cfg.a):
        for x in _extreme_values(cfg.x):
            parts = [int(p) * cfg.terms for p in G.sliced_partials(a, x, cfg.a, cfg.x)]
            for k, p in enumerate(parts):
                assert plo <= p <= phi, (k, p, wd.partial_bits)
                seen_lo[k], seen_hi[k] = min(seen_lo[k], p), max(seen_hi[k], p)
            y = int(G.recombine(parts, wd.shifts))
            assert y == cfg.terms * _value(a, cfg.a) * _value(x, cfg.x)
            assert W.signed_bits(y, y) <= wd.out_bits
    # The derived partial width is tight: the extreme codes need every bit of it.
    assert [(lo, hi) for lo, hi in zip(seen_lo, seen_hi, strict=True)] == list(wd.partial_ranges)
    if d["partial_bits"] == 0:
        assert wd.partial_bits == max(W.signed_bits(*r) for r in wd.partial_ranges)
    # Any partials of partial_bits bits recombine within out_bits.
    for fill in (plo, phi):
        y = int(G.recombine([fill] * wd.count, wd.shifts))
        assert W.signed_bits(y, y) <= wd.out_bits


# ---- simulation ------------------------------------------------------------------------------

def _simulate(cfg: RecombinationConfig, groups: list[list[int]]) -> list[int]:
    """Feed partial vectors (order k) to the unit, valid every cycle, ready always; return
    the outputs."""
    from amaranth.sim import Simulator

    from hdl.recombination import RecombinationUnit

    dut = RecombinationUnit(cfg)
    wd = cfg.widths
    mask = (1 << wd.partial_bits) - 1
    if cfg.mode == "parallel":
        beats = [sum((p & mask) << (k * wd.partial_bits) for k, p in enumerate(g)) for g in groups]
    else:
        beats = [g[k] for g in groups for k in wd.serial_order]
    outputs: list[int] = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        payload = dut.i.payload if cfg.mode == "serial" else dut.i.payload.as_value()
        pending = list(beats)
        for _ in range(len(beats) + dut.latency + 3):
            if pending:
                ctx.set(payload, pending[0])
                ctx.set(dut.i.valid, 1)
            else:
                ctx.set(dut.i.valid, 0)
            if ctx.get(dut.o.valid):
                outputs.append(ctx.get(dut.o.payload))
            if pending and ctx.get(dut.i.ready):
                pending.pop(0)
            await ctx.tick()
        assert not pending

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return outputs


@settings(max_examples=30, **SETTINGS)
@given(recombination_dicts(max_bits=12, max_terms=64), st.integers(0, 2**32 - 1))
def test_random_recombination_units_match_golden(d, seed):
    cfg = config_from_dict(d)
    wd = cfg.widths
    rng = random.Random(seed)
    plo, phi = W.twos_range(wd.partial_bits)
    groups = []
    for _ in range(3):                      # consistent engine partials of random operands
        lo_a, hi_a = (0, (1 << cfg.a_bits) - 1) if cfg.a_encoding == "odd" else \
            W.twos_range(cfg.a_bits)
        lo_x, hi_x = (0, (1 << cfg.x_bits) - 1) if cfg.x_encoding == "odd" else \
            W.twos_range(cfg.x_bits)
        t = min(cfg.terms, 8)               # fewer terms than configured always fit
        a = torch.tensor([rng.randint(lo_a, hi_a) for _ in range(t)])
        x = torch.tensor([rng.randint(lo_x, hi_x) for _ in range(t)])
        groups.append([int(p) for p in G.sliced_partials(a, x, cfg.a, cfg.x, dim=0)])
    groups.append([rng.choice([plo, phi, rng.randint(plo, phi)]) for _ in range(wd.count)])
    groups.append([plo] * wd.count)
    groups.append([phi] * wd.count)
    want = [int(G.recombine(g, wd.shifts)) for g in groups]
    assert _simulate(cfg, groups) == want
