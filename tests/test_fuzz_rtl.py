# SPDX-License-Identifier: Apache-2.0
"""Config fuzzing of the RTL (hypothesis): random configs across the whole valid space of
forms elaborate, match the golden model bit for bit and emit lint-clean Verilog.

* Random tiny generator layers on Amaranth's simulator (the driver and scoreboard of
  ``test_generator_rtl``): conv / linear, 1..5 channels, kernel 1..3, each level on or
  off (``base_in`` 0..3, ``base_out`` 0..4), code and engine widths 1..8, 1..9 lanes,
  full precision or 2..16 output bits with any shift near the weight width (or
  anywhere up to the limit), every rounding, both recombination forms, random or
  corner codes (``golden.codes.CORNERS``), output always ready or random
  back-pressure. Each layer's cost is capped by construction: lanes drop until the
  datapath is small enough to elaborate quickly (:data:`MAX_DATAPATH_SIZE`), then the
  shape shrinks until a pass fits :data:`SIM_MAX_CYCLES`, so every combination of widths
  still runs.
* Random generator and recombination configs emit Verilog that
  ``verilator --lint-only -Wall`` passes with the project's documented waivers
  (:func:`gen.verilog.lint_verilog`).
* A fixed sample (seeded, the same every run) of random configs runs through cocotb on
  Verilator (:func:`verif.runner.run_sim`): generators with two passes and
  a reload, recombination units with their corner and random vectors.

Every example prints its config and seed; a generator config replays with
``GeneratorConfig.from_dict(<printed dict>)`` and the printed seed / corner /
back-pressure into ``test_generator_rtl.simulate``.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_fuzz_configs import recombination_dicts
from test_generator_rtl import check_beats, simulate

from gen.verilog import emit_verilog, lint_verilog, top_name
from golden.codes import CORNERS, random_codes, save_codes
from hdl.generator import Generator
from insitugen import widths as W
from insitugen.config import (
    LAYERS,
    MAX_DATAPATH_BITS,
    MAX_GENERATOR_STAGES,
    PRODUCT_ORDERS,
    RECOMBINATION_FORMS,
    ROUNDINGS,
    GeneratorConfig,
    RecombinationConfig,
    config_from_dict,
)
from insitugen.errors import ConfigError
from verif.runner import run_sim

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: The product orders of oihw output, drawn first (w1once, tile output, comes last).
ROW_ORDERS = ("vb", "w1")

#: Cycle cap of one pass on Amaranth's simulator (about 3-4k cycles/s there).
SIM_MAX_CYCLES = 4000
#: Cycle cap of one pass of the Verilator sample (build time dominates there).
VERILATOR_MAX_CYCLES = 5000
#: Cap of :func:`datapath_size` (about 5 s to emit and lint at the cap).
MAX_DATAPATH_SIZE = 2000


# ---- drawing configs: one drawer, fed by hypothesis or by a seeded random.Random ----------

class _HypothesisPick:
    def __init__(self, draw):
        self._draw = draw

    def int(self, lo: int, hi: int) -> int:
        return self._draw(st.integers(lo, hi))

    def choice(self, seq):
        return self._draw(st.sampled_from(list(seq)))


class _RandomPick:
    def __init__(self, rng: random.Random):
        self._rng = rng

    def int(self, lo: int, hi: int) -> int:
        return self._rng.randint(lo, hi)

    def choice(self, seq):
        return self._rng.choice(list(seq))


def _model(cfg: GeneratorConfig) -> Generator:
    """The generator's figures only (never elaborated)."""
    return Generator.figures(cfg)


def _shrink(cfg: GeneratorConfig, max_cycles: int) -> GeneratorConfig:
    """Smaller shape of the same form until a pass takes at most ``max_cycles`` cycles
    (kernel, then input channels, then output channels). Steps per round depend only on
    the widths, levels and ``base_out``, so one beat always fits the caps used here."""
    while _model(cfg).pass_cycles > max_cycles:
        if cfg.kernel > 1:
            cfg = cfg.replace(kernel=cfg.kernel - 1)
        elif cfg.in_channels > 1:
            cfg = cfg.replace(in_channels=cfg.in_channels - 1)
        elif cfg.out_channels > 1:
            cfg = cfg.replace(out_channels=cfg.out_channels - 1)
        else:
            break
    return cfg


def datapath_size(cfg: GeneratorConfig) -> int:
    """Rough size of the generator's datapath (what elaboration, Verilog emission and
    lint time grow with): lanes x engine slice pairs of the schedule's steps, four times that
    for the separate
    recombination (a partial accumulator per pair and a shift-add tree per lane)."""
    sched = Generator.figures(cfg)
    pairs = len(sched.pairs_level1) + len(sched.pairs_level2)
    return cfg.lanes * max(1, pairs) * (4 if cfg.recombination == "separate" else 1)


def draw_generator(pick, *, max_channels: int = 5, max_lanes: int = 9,
                   max_cycles: int | None = None,
                   max_size: int = MAX_DATAPATH_SIZE) -> GeneratorConfig:
    """A random small GeneratorConfig; every config this can return is valid.

    Lanes drop until :func:`datapath_size` is at most ``max_size`` (a 1-bit engine
    with 8-bit codes and 16 separate lanes takes 20-30 s to emit and lint); with
    ``max_cycles`` the shape then shrinks until a pass fits (:func:`_shrink`)."""
    layer = pick.choice(LAYERS)
    out_bits = pick.choice([0] + list(range(2, 17)))
    d = {
        "layer": layer,
        "out_channels": pick.int(1, max_channels),
        "in_channels": pick.int(1, max_channels),
        "kernel": 1 if layer == "linear" else pick.int(1, 3),
        "base_in": pick.int(0, 3),          # 0: level 1 off
        "base_out": pick.int(0, 4),         # 0: level 2 off
        "qb": pick.int(1, 8),
        "qu": pick.int(1, 8),
        "qv": pick.int(1, 8),
        "engine_bits": pick.int(1, 8),
        "lanes": pick.int(1, max_lanes),
        "out_bits": out_bits,
        "shift": 0,
        "rounding": pick.choice(ROUNDINGS),
        "recombination": pick.choice(RECOMBINATION_FORMS),
        "product_order": pick.choice(ROW_ORDERS),
    }
    # the w1 order (both levels on) cannot register its product: at most one stage there
    top_stage = (1 if d["product_order"] == "w1" and d["base_in"] and d["base_out"]
                 else MAX_GENERATOR_STAGES)
    d["pipeline_stages"] = pick.int(0, top_stage)
    cfg = GeneratorConfig(**d)
    if out_bits:
        # near the weight width (where rounding and saturation both happen), sometimes
        # anywhere up to the limit (every weight rounds to 0 or -1)
        top = cfg.acc_bits + 1 if pick.int(0, 3) else MAX_DATAPATH_BITS
        cfg = cfg.replace(shift=pick.int(0, top))
    while cfg.lanes > 1 and datapath_size(cfg) > max_size:
        cfg = cfg.replace(lanes=cfg.lanes - 1)
    # the output beat: auto (0) or any divisor of the lanes (short rounds make it stall)
    cfg = cfg.replace(beat_weights=pick.choice(
        [0] + [b for b in range(1, cfg.lanes + 1) if cfg.lanes % b == 0]))
    if max_cycles is not None:
        cfg = _shrink(cfg, max_cycles)
    # the W1-once order (both levels on; tile-major output, fused accumulators), drawn
    # last so the draws above, and the fixed samples' configs, stay what they were
    if cfg.level1 and cfg.level2 and pick.int(0, 2) == 0:
        # (its beat is always the lanes: beat_weights 0)
        once = cfg.replace(product_order="w1once", order="tile", recombination="fused",
                           beat_weights=0)
        if max_cycles is None or _model(once).pass_cycles <= max_cycles:
            cfg = once
    return cfg


def draw_recombination(pick, *, max_bits: int = 8, max_terms: int = 9) -> RecombinationConfig:
    """A random small RecombinationConfig (uneven slices, both encodings and modes)."""
    eb = pick.int(1, 6)
    d = {"engine_bits": eb}
    for op in ("a", "x"):
        bits = pick.int(1, max_bits)
        d[f"{op}_bits"] = bits
        d[f"{op}_encoding"] = pick.choice(W.ENCODINGS)
        slices, left = [], bits
        if pick.int(0, 1):
            while left:
                slices.append(pick.int(1, min(eb, left)))
                left -= slices[-1]
        d[f"{op}_slices"] = tuple(slices)
    d["terms"] = pick.int(1, max_terms)
    d["mode"] = pick.choice(("parallel", "serial"))
    cfg = RecombinationConfig(**d)
    count = cfg.widths.count
    top = W.bits_for_count(count) + 1 if cfg.mode == "parallel" else 4
    cfg = cfg.replace(pipeline_stages=pick.int(0, min(4, top)))
    if pick.int(0, 2) == 0:
        cfg = cfg.replace(partial_bits=cfg.widths.partial_bits + pick.int(0, 3))
    return cfg


@st.composite
def generator_configs(draw, **kw):
    return draw_generator(_HypothesisPick(draw), **kw)


def _show(cfg) -> str:
    return repr(cfg.to_dict())


# ---- 1. random generator layers on Amaranth's simulator ------------------------------------

@settings(max_examples=25, **SETTINGS)
@given(generator_configs(max_cycles=SIM_MAX_CYCLES), st.integers(0, 2**31 - 1),
       st.sampled_from(CORNERS), st.sampled_from(["none", "random"]))
def test_random_generator_layers_match_golden(cfg, seed, corner, bp):
    print(f"generator {_show(cfg)}: seed {seed}, corner {corner}, back-pressure {bp}")
    codes = random_codes(cfg, seed, corner)
    dut, res = simulate(cfg, [codes], passes=1, backpressure=bp, seed=seed)
    (payloads, cycles), = res[0]
    check_beats(cfg, dut, payloads, codes, f"{corner} codes", seed)
    if bp == "none":
        assert cycles == dut.pass_cycles, (f"pass took {cycles} cycles, design formula "
                                           f"{dut.pass_cycles} (seed {seed})")
    else:
        assert cycles >= dut.pass_cycles


def test_generator_drawer_spans_the_forms():
    """The drawer (seeded here) reaches every form the fuzz tests claim to cover, and the
    cost cap keeps every layer simulable."""
    rng = random.Random(5)
    cfgs = [draw_generator(_RandomPick(rng), max_cycles=SIM_MAX_CYCLES) for _ in range(400)]
    assert all(_model(c).pass_cycles <= SIM_MAX_CYCLES for c in cfgs)
    assert all(datapath_size(c) <= MAX_DATAPATH_SIZE for c in cfgs)
    assert {(c.level1, c.level2) for c in cfgs} == {(a, b) for a in (0, 1) for b in (0, 1)}
    assert {c.layer for c in cfgs} == set(LAYERS)
    assert {c.rounding for c in cfgs} == set(ROUNDINGS)
    assert {c.recombination for c in cfgs} == set(RECOMBINATION_FORMS)
    both = [c for c in cfgs if c.level1 and c.level2]
    assert {(c.product_order, c.pipeline_stages) for c in both} == {
        ("vb", 0), ("vb", 1), ("vb", 2), ("w1", 0), ("w1", 1), ("w1once", 0), ("w1once", 1),
        ("w1once", 2)}
    assert {c.order for c in both if c.product_order == "w1once"} == {"tile"}
    assert {c.engine_bits for c in cfgs} == set(range(1, 9))
    assert {c.lanes for c in cfgs} == set(range(1, 10))
    assert {c.kernel for c in cfgs} == {1, 2, 3}
    assert {c.out_bits for c in cfgs} >= {0, 2, 16}
    for f in ("qb", "qu", "qv"):
        assert {getattr(c, f) for c in cfgs} == set(range(1, 9)), f
    assert any(c.out_bits and c.shift > c.acc_bits for c in cfgs)
    assert any(c.out_bits and c.shift == 0 for c in cfgs)
    assert any(c.beat < c.lanes and _model(c).drain_stall_cycles for c in cfgs)
    assert any(c.beat < c.lanes and not _model(c).drain_stall_cycles for c in cfgs)
    assert any(1 < c.beat < c.lanes for c in cfgs)


# ---- 2. lint-clean Verilog for random configs --------------------------------------------

def _lint(cfg) -> None:
    text = emit_verilog(cfg)
    assert f"module {top_name(cfg)}(" in text
    with tempfile.TemporaryDirectory(prefix="insitugen-fuzz-lint-") as d:
        path = Path(d) / "design.v"
        path.write_text(text)
        lint_verilog(path, top=top_name(cfg))      # raises ToolError on any finding


@settings(max_examples=10, **SETTINGS)
@given(generator_configs(max_channels=8, max_lanes=16))
def test_random_generator_verilog_is_lint_clean(cfg):
    print(f"generator {_show(cfg)}")
    _lint(cfg)


@settings(max_examples=10, **SETTINGS)
@given(recombination_dicts(max_bits=16))
def test_random_recombination_verilog_is_lint_clean(d):
    try:
        cfg = config_from_dict(d)
    except ConfigError:                # a result wider than the int64 datapath limit
        assume(False)
    print(f"recombination {_show(cfg)}")
    _lint(cfg)


# ---- 3. a fixed sample on Verilator through cocotb ------------------------------------------

#: seed -> code corner of the sample's generators: each seed draws one config, the same
#: every run (picked among the first 40 so that the three span the forms; the guard test
#: below keeps that true if the drawer changes). Today: 6 = conv, both levels, fused,
#: w1 order, 1-bit engine; 3 = conv, level 1 off, separate, saturating; 25 = linear, level 2
#: off, full precision; 1 = conv, both levels, separate, vb order, two register stages;
#: 17 = linear, both levels, fused, w1once order (tile output), one register stage.
VERILATOR_GENERATORS = {6: "max", 3: "alternating", 25: "min", 1: "max", 17: "min"}
VERILATOR_RECOMBINATION_SEEDS = (21, 22)


def _verilator_generator(seed: int) -> GeneratorConfig:
    return draw_generator(_RandomPick(random.Random(seed)), max_channels=4, max_lanes=9,
                          max_cycles=VERILATOR_MAX_CYCLES)


def _verilator_recombination(seed: int) -> RecombinationConfig:
    return draw_recombination(_RandomPick(random.Random(seed)))


def test_verilator_sample_spans_the_forms():
    gens = [_verilator_generator(s) for s in VERILATOR_GENERATORS]
    assert {c.layer for c in gens} == set(LAYERS)
    assert {c.recombination for c in gens} == set(RECOMBINATION_FORMS)
    assert not all(c.level1 for c in gens) and not all(c.level2 for c in gens)
    assert any(c.level1 and c.level2 for c in gens)
    assert {c.product_order for c in gens if c.level1 and c.level2} == set(PRODUCT_ORDERS)
    assert any(c.level1 and c.level2 and c.pipeline_stages == 2 for c in gens)
    assert any(c.out_bits == 0 for c in gens) and any(c.out_bits for c in gens)
    recs = [_verilator_recombination(s) for s in VERILATOR_RECOMBINATION_SEEDS]
    assert {c.mode for c in recs} == {"parallel", "serial"}


@pytest.mark.parametrize("seed", list(VERILATOR_GENERATORS))
def test_random_generator_on_verilator(seed, tmp_path):
    cfg = _verilator_generator(seed)
    corner = VERILATOR_GENERATORS[seed]
    print(f"generator {_show(cfg)}: seed {seed}, {corner} codes, back-pressure random")
    codes = tmp_path / "codes.npz"
    save_codes(codes, random_codes(cfg, seed, corner))
    res = run_sim(cfg, simulator="verilator", seed=seed, backpressure="random", quiet=True,
                  build_dir=tmp_path / "build",
                  extra={"passes": 2, "reload": True, "codes": str(codes)})
    model = _model(cfg)
    assert res.beats == 2 * model.n_beats
    assert res.details["beats_per_pass"] == model.n_beats
    assert res.details["reload_checked"]
    assert res.cycles >= model.pass_cycles
    assert res.details["protocol"]["weights"]["lasts"] == 3    # two passes and the reload


@pytest.mark.parametrize("seed", VERILATOR_RECOMBINATION_SEEDS)
def test_random_recombination_on_verilator(seed, tmp_path):
    cfg = _verilator_recombination(seed)
    print(f"recombination {_show(cfg)}: seed {seed}, back-pressure random")
    res = run_sim(cfg, simulator="verilator", seed=seed, backpressure="random", quiet=True,
                  build_dir=tmp_path / "build")
    assert res.beats == res.details["vectors"] >= 256
    assert res.details["corner_cases"] > 0
    per = 1 if cfg.mode == "parallel" else cfg.widths.count
    assert res.details["input_beats"] == res.beats * per
