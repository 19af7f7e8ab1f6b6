# SPDX-License-Identifier: Apache-2.0
"""RecombinationUnit on Amaranth's simulator: exhaustive for small widths, vs the golden model.

Every output beat is compared with ``golden.arith.recombine`` on the same
partials; valid/ready patterns are bit strings (repeated); the latency checked
is the component's own ``latency`` property. The stream protocol rules
(``verif.protocol.StreamRules``) watch both streams on every clock of every run.
"""

from __future__ import annotations

import itertools
import random

import pytest
import torch
from amaranth.sim import Simulator

from golden import arith
from hdl.ports import port_view
from hdl.recombination import RecombinationUnit, register_boundaries
from insitugen import widths as W
from insitugen.config import RecombinationConfig
from verif.backpressure import generators, ready_pattern, to_bits, valid_pattern
from verif.protocol import StreamRules, add_amaranth_monitor

SEED = 20260511


def golden(cfg: RecombinationConfig, vectors: list[list[int]]) -> list[int]:
    return arith.recombine(torch.tensor(vectors, dtype=torch.int64), cfg.widths.shifts).tolist()


def simulate(cfg: RecombinationConfig, vectors, valid_pattern="1", ready_pattern="1",
             tail=8):
    """Drive ``vectors`` (partials indexed k) through the unit; return outputs and cycles.

    The source holds ``valid`` (and the payload) until accepted; a '0' in
    ``valid_pattern`` only delays raising it. ``tail`` idle cycles with
    ``o.ready = 1`` follow the last expected beat so extra beats are seen.
    """
    dut = RecombinationUnit(cfg)
    order = cfg.widths.serial_order
    if cfg.mode == "parallel":
        beats = [list(v) for v in vectors]
    else:
        beats = [v[k] for v in vectors for k in order]
    per_group = 1 if cfg.mode == "parallel" else len(order)
    res = {"out": [], "in_cycles": [], "out_cycles": [], "extra": []}

    async def bench(ctx):
        idx, cycle, holding = 0, 0, False
        limit = 40 * (len(beats) + 10)
        while len(res["out"]) < len(vectors) and cycle < limit:
            want_valid = valid_pattern[cycle % len(valid_pattern)] == "1"
            if not holding and idx < len(beats) and want_valid:
                holding = True
                ctx.set(dut.i.payload, beats[idx])
            ctx.set(dut.i.valid, holding)
            ctx.set(dut.o.ready, ready_pattern[cycle % len(ready_pattern)] == "1")
            _, _, iv, ir, ov, ordy, op = await ctx.tick().sample(
                dut.i.valid, dut.i.ready, dut.o.valid, dut.o.ready, dut.o.payload)
            if iv and ir:
                if (idx + 1) % per_group == 0:
                    res["in_cycles"].append(cycle)
                idx += 1
                holding = False
            if ov and ordy:
                res["out"].append(op)
                res["out_cycles"].append(cycle)
            cycle += 1
        ctx.set(dut.i.valid, 0)
        ctx.set(dut.o.ready, 1)
        for _ in range(tail):
            _, _, ov, op = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if ov:
                res["extra"].append(op)
        res["cycles"] = cycle

    rules = {"i": StreamRules("i"), "o": StreamRules("o")}
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    add_amaranth_monitor(sim, dut.i, rules["i"])
    add_amaranth_monitor(sim, dut.o, rules["o"])
    sim.run()
    rules["i"].check(expected_handshakes=len(beats) if len(res["out"]) == len(vectors) else None)
    rules["o"].check(expected_handshakes=len(res["out"]) + len(res["extra"]))
    return dut, res


def check(cfg, vectors, valid_pattern="1", ready_pattern="1"):
    dut, res = simulate(cfg, vectors, valid_pattern, ready_pattern)
    exp = golden(cfg, vectors)
    assert len(res["out"]) == len(exp), f"{len(res['out'])} of {len(exp)} results arrived"
    for n, (got, want, vec) in enumerate(zip(res["out"], exp, vectors, strict=True)):
        assert got == want, f"beat {n}: partials {vec} gave {got}, golden {want}"
    assert res["extra"] == [], f"extra output beats after the last result: {res['extra']}"
    return dut, res


def all_partial_vectors(cfg):
    lo, hi = W.twos_range(cfg.widths.partial_bits)
    return [list(v) for v in itertools.product(range(lo, hi + 1), repeat=cfg.widths.count)]


def product_vectors(cfg, a_values, x_values):
    """Partials the engine would produce for every (a, x) pair (``terms`` equal products)."""
    vecs = []
    for a, x in itertools.product(a_values, x_values):
        a_t = torch.full((cfg.terms,), a, dtype=torch.int64)
        x_t = torch.full((cfg.terms,), x, dtype=torch.int64)
        parts = arith.sliced_partials(a_t, x_t, cfg.a, cfg.x, dim=-1)
        vecs.append([int(p) for p in parts])
    return vecs


def operand_values(op: W.SlicedOperand):
    if op.encoding == "odd":
        return range(1 << op.bits)                  # codes
    lo, hi = op.range
    return range(lo, hi + 1)                        # integers


# ---- configs ----------------------------------------------------------------------
TINY = {   # small enough for every pb-bit partial vector
    "odd2x2_e1": RecombinationConfig(engine_bits=1, a_bits=2, x_bits=2),
    "twos3_odd2_e2": RecombinationConfig(engine_bits=2, a_bits=3, a_encoding="twos", x_bits=2),
    "single_slice": RecombinationConfig(engine_bits=3, a_bits=2, x_bits=2),
}
PRODUCTS = {   # exhaustive over operand values, real sliced partials
    "odd4x4_e2": RecombinationConfig(engine_bits=2, a_bits=4, x_bits=4),
    "uneven_a12_twos": RecombinationConfig(engine_bits=2, a_bits=3, a_slices=(1, 2),
                                           x_bits=4, x_encoding="twos", x_slices=(2, 1, 1)),
    "three_slices_odd": RecombinationConfig(engine_bits=2, a_bits=5, a_slices=(2, 2, 1),
                                            x_bits=3),
    "dot_terms3_twos": RecombinationConfig(engine_bits=2, a_bits=4, a_encoding="twos",
                                           x_bits=3, terms=3),
}


def stage_choices(cfg):
    if cfg.mode == "serial":
        return [0, 1, 2]
    levels = (cfg.widths.count - 1).bit_length()
    return list(range(0, min(levels + 1, 4) + 1))


def cases(table):
    for name, base in table.items():
        for mode in ("parallel", "serial"):
            c = base.replace(mode=mode)
            for st in stage_choices(c):
                yield pytest.param(c.replace(pipeline_stages=st), id=f"{name}-{mode}-st{st}")


@pytest.mark.parametrize("cfg", list(cases(TINY)))
def test_every_partial_vector(cfg):
    check(cfg, all_partial_vectors(cfg))


@pytest.mark.parametrize("cfg", list(cases(PRODUCTS)))
def test_every_operand_pair(cfg):
    vecs = product_vectors(cfg, operand_values(cfg.a), operand_values(cfg.x))
    exp = golden(cfg, vecs)
    # The recombined partials are the exact products (sanity of the stimulus itself).
    true = [arith.operand_value(a, cfg.a).item() * arith.operand_value(x, cfg.x).item() * cfg.terms
            for a, x in itertools.product(operand_values(cfg.a), operand_values(cfg.x))]
    assert exp == true
    check(cfg, vecs)


PATTERNS = {
    "none": ("1", "1"),
    "valid_gaps": ("1101001", "1"),
    "ready_gaps": ("1", "1011000"),
    "both_periodic": ("110", "1001"),
    "ready_rarely": ("1", "0001"),
    # the testbenches' own random patterns (verif.backpressure), as bit strings
    "random": tuple(to_bits(pattern("random", rng, n)) for pattern, rng, n in
                    zip((valid_pattern, ready_pattern), generators(SEED), (97, 89),
                        strict=True)),
}


@pytest.mark.parametrize("pattern", list(PATTERNS.values()), ids=list(PATTERNS))
@pytest.mark.parametrize("cfg", [
    pytest.param(PRODUCTS["odd4x4_e2"].replace(pipeline_stages=s, mode=m), id=f"{m}-st{s}")
    for m, s in [("parallel", 0), ("parallel", 1), ("parallel", 3), ("serial", 0), ("serial", 2)]])
def test_backpressure_loses_nothing(cfg, pattern):
    rng = random.Random(SEED)
    lo, hi = W.twos_range(cfg.widths.partial_bits)
    vecs = [[rng.randint(lo, hi) for _ in range(cfg.widths.count)] for _ in range(60)]
    check(cfg, vecs, *pattern)


CORNERS = {
    "all_min": lambda lo, hi, n: [lo] * n,
    "all_max": lambda lo, hi, n: [hi] * n,
    "zero": lambda lo, hi, n: [0] * n,
    "alternating": lambda lo, hi, n: [hi if k % 2 else lo for k in range(n)],
    "alternating_inv": lambda lo, hi, n: [lo if k % 2 else hi for k in range(n)],
    "minus_one": lambda lo, hi, n: [-1] * n,
}


@pytest.mark.parametrize("corner", list(CORNERS.values()), ids=list(CORNERS))
@pytest.mark.parametrize("cfg", [
    pytest.param(RecombinationConfig(engine_bits=3, a_bits=9, x_bits=8, x_encoding="twos",
                                     terms=5, mode=m, pipeline_stages=s), id=f"wide-{m}-st{s}")
    for m, s in [("parallel", 0), ("parallel", 2), ("serial", 1)]])
def test_rail_corners(cfg, corner):
    lo, hi = W.twos_range(cfg.widths.partial_bits)
    n = cfg.widths.count
    vecs = [corner(lo, hi, n)] + [[hi if j == k else 0 for j in range(n)] for k in range(n)]
    check(cfg, vecs)


@pytest.mark.parametrize("mode", ["parallel", "serial"])
@pytest.mark.parametrize("stages", [0, 1, 2, 3])
def test_latency_and_full_throughput(mode, stages):
    cfg = PRODUCTS["odd4x4_e2"].replace(mode=mode, pipeline_stages=stages)
    rng = random.Random(SEED)
    lo, hi = W.twos_range(cfg.widths.partial_bits)
    vecs = [[rng.randint(lo, hi) for _ in range(cfg.widths.count)] for _ in range(20)]
    dut, res = check(cfg, vecs)
    assert dut.latency == stages
    # Output beat n leaves `latency` cycles after its (last) input beat was accepted ...
    delays = [o - i for i, o in zip(res["in_cycles"], res["out_cycles"], strict=True)]
    assert delays == [dut.latency] * 20
    # ... and with no back-pressure a beat is accepted every cycle.
    beats = 20 * (1 if mode == "parallel" else cfg.widths.count)
    assert res["in_cycles"][-1] - res["in_cycles"][0] == beats - (1 if mode == "parallel"
                                                                 else cfg.widths.count)


def test_register_boundaries_spread_evenly():
    assert register_boundaries(2, 0) == []
    assert register_boundaries(2, 1) == [2]            # one stage registers the output
    assert register_boundaries(2, 3) == [0, 1, 2]      # every boundary
    assert register_boundaries(3, 2) == [1, 3]
    assert register_boundaries(0, 2) == [0, 0]         # single partial: stacked


def test_ports_follow_widths():
    cfg = RecombinationConfig(engine_bits=3, a_bits=7, x_bits=5, terms=4)
    par, ser = port_view(cfg), port_view(cfg.replace(mode="serial"))   # ports, nothing built
    wd = cfg.widths
    assert par.i.payload.shape().size == wd.partial_bits * wd.count
    assert ser.i.payload.shape().width == wd.partial_bits
    assert par.o.payload.shape().width == ser.o.payload.shape().width == wd.out_bits


def test_rejects_generator_config():
    import gc
    import warnings

    from insitugen.config import GeneratorConfig
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the half-built object is never elaborated
        with pytest.raises(TypeError, match="RecombinationConfig"):
            RecombinationUnit(GeneratorConfig())
        gc.collect()
