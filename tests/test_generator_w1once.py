# SPDX-License-Identifier: Apache-2.0
"""The W1-once product order (``product_order = "w1once"``, ``order = "tile"``) on the
Amaranth simulator: bit-exact against the golden model through the tile-major stream,
cycles equal to ``Schedule`` exactly, each code and W1-buffer word read once per use; the
schedule's figures against counts made independently; the config's rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_generator_rtl import BASE, check_beats, count_enables, run_case, simulate

from golden.codes import CORNERS, random_codes
from golden.generate import full_precision, generate, generate_stream
from insitugen.config import GeneratorConfig
from insitugen.errors import ConfigError
from insitugen.order import beat_counts, from_stream, stream_permutation, to_stream
from insitugen.schedule import Schedule
from verif.stimulus import generator_tb_figures
from verif.tb_generator import decode_beats

ONCE = dict(product_order="w1once", order="tile")

#: (changes to BASE, back-pressure): BASE is 4 -> 3 channels 3x3, Bo = 3, 4 lanes
CASES = {
    "base": ({}, "none"),
    "base_random_backpressure": ({}, "random"),
    "no_stages": (dict(pipeline_stages=0), "none"),
    "two_stages": (dict(pipeline_stages=2), "none"),
    "two_stages_periodic": (dict(pipeline_stages=2, lanes=5), "periodic"),
    "partial_last_tile_lanes5": (dict(lanes=5), "none"),
    "lanes_gt_qK": (dict(lanes=16, in_channels=1), "random"),
    "lanes_divide_qK": (dict(lanes=9), "none"),
    "lanes1": (dict(lanes=1, out_channels=2, in_channels=1), "none"),
    "bo1_bubbles": (dict(base_out=1), "none"),
    "bo1_two_stages": (dict(base_out=1, pipeline_stages=2), "periodic"),
    "bo2_bi1_short_blocks": (dict(base_out=2, base_in=1, qu=3, qv=3, engine_bits=3), "none"),
    "bi1": (dict(base_in=1), "none"),
    "kernel1": (dict(kernel=1, in_channels=5), "none"),
    "linear": (dict(layer="linear", kernel=1, in_channels=6, out_channels=3), "none"),
    "kernel5_lanes7": (dict(kernel=5, in_channels=2, lanes=7, base_out=2), "none"),
    "engine2_sliced_v": (dict(engine_bits=2, qb=5, qu=7, qv=5, lanes=7, shift=10), "none"),
    "engine2_one_bit_b": (dict(engine_bits=2, qb=1, qu=5, qv=2, shift=4), "none"),
    "engine8_unsliced": (dict(engine_bits=8, qb=3, qu=3, qv=8, shift=10), "none"),
    "floor": (dict(rounding="floor"), "none"),
    "half_up": (dict(rounding="half_up"), "none"),
    "half_even_ties": (dict(rounding="half_even", shift=1, base_out=1, base_in=1), "none"),
    "saturate_half_up": (dict(out_bits=3, shift=4, rounding="half_up"), "periodic"),
    "full_precision": (dict(out_bits=0, shift=0), "none"),
    "shift_wider_than_weight": (dict(out_bits=4, shift=22, rounding="half_up"), "none"),
}
SATURATING = {"saturate_half_up"}


def _cfg(changes) -> GeneratorConfig:
    return BASE.replace(**ONCE, **changes)


@pytest.mark.parametrize("name", list(CASES), ids=list(CASES))
def test_w1once_bit_exact(name):
    changes, bp = CASES[name]
    cfg = _cfg(changes)
    seed = 3000 + list(CASES).index(name)
    corner = "max" if name in SATURATING else CORNERS[list(CASES).index(name) % len(CORNERS)]
    print(f"case {name}")
    run_case(cfg, seed, bp, corner)
    if name in SATURATING:
        hi = (1 << (cfg.out_bits - 1)) - 1
        layer_b = random_codes(cfg, seed + 1, corner)
        assert (full_precision(cfg, layer_b).abs() > (hi << cfg.shift)).any()


@pytest.mark.parametrize("stages", [0, 1, 2])
def test_stall_at_every_round_end(stages):
    """The sink takes a beat only once per ``S + d`` cycles (``S`` = steps of a row), so
    the output register is full at every round end and the datapath stalls there for
    ``d``-dependent lengths: with a phase-2 row's first step, or the next tile's first
    phase-1 step, in the accumulate stage. Every stage register must hold then (the W1
    slice register once loaded the next step's slice during the stall: the first step of
    a row after a stall multiplied by the wrong W1 slice)."""
    cfg = _cfg(dict(lanes=5, pipeline_stages=stages))
    S = Schedule(cfg).steps_per_round
    codes = random_codes(cfg, 4100 + stages)
    for d in (1, 3, 7):
        ready = "1" + "0" * (S + d)
        print(f"stages {stages}, seed {4100 + stages}, ready pattern {ready}")
        dut, res = simulate(cfg, [codes], passes=1, ready_bits=ready)
        (beats, _), = res[0]
        check_beats(cfg, dut, beats, codes, f"ready {ready}", 4100 + stages)


def test_stream_is_tile_major():
    """The beats themselves, decoded without the scoreboard's mapping, are golden's
    tile-major stream (generate_stream): tile 0 of every row, then tile 1, ..."""
    cfg = _cfg(dict(lanes=5))
    codes = random_codes(cfg, 41)
    dut, res = simulate(cfg, [codes], passes=1, seed=41)
    (beats, _), = res[0]
    w, count, _ = decode_beats(generator_tb_figures(cfg), beats)
    got = w[np.arange(cfg.lanes)[None, :] < count[:, None]]
    assert np.array_equal(got, generate_stream(cfg, codes).numpy())
    # tile 0 of row 1 is beat 1 (row-major would put row 0's tile 1 there)
    N = cfg.in_channels * cfg.K
    assert np.array_equal(w[1, :5], generate(cfg, codes).reshape(cfg.out_channels, N)[1, :5])


@pytest.mark.parametrize("changes", [{}, dict(pipeline_stages=0, lanes=5), dict(base_out=1)],
                         ids=["one_stage", "no_stages_lanes5", "bo1"])
def test_each_word_read_once_per_use(changes):
    """Gated reads: over one pass with output stalls, every code memory and the W1 buffer
    is read exactly ``Schedule.reads_per_pass`` times and written ``w1_buffer_writes``."""
    cfg = _cfg(changes)
    dut, counts = count_enables(
        cfg, random_codes(cfg, 23),
        lambda dut: {**dut.read_enables, "writes": [dut.w1_write_enable]}, 23, stall_every=5)
    sched = Schedule(cfg)
    assert counts.pop("writes") == sched.w1_buffer_writes_per_pass
    assert counts == sched.reads_per_pass, f"reads {counts}, schedule {sched.reads_per_pass}"


# ---- the schedule, counted independently ---------------------------------------------------

def _count_cycles(cfg: GeneratorConfig) -> int:
    """One pass, step by step: per column tile, every W1[o, c, t] once (Bi terms of U x B
    slice pairs), then per row and basis row the V x W1 slice pairs, plus the bubbles."""
    s = Schedule(cfg)
    u, b, v, w1 = (cfg.u_operand.count, cfg.b_operand.count, cfg.v_operand.count,
                   cfg.w1_operand.count)
    cycles = 0
    for _tile in range(s.rounds_per_row):
        for _o in range(cfg.Bo):
            cycles += cfg.Bi * u * b
        cycles += s.w1_bubbles
        for _j in range(cfg.out_channels):
            for _o in range(cfg.Bo):
                cycles += v * w1
    return cycles


@pytest.mark.parametrize("path", ["examples/generator/resnet18_128x128_3x3.toml",
                                  "examples/generator/resnet18_512x512_3x3.toml"],
                         ids=["default_layer", "layer_512"])
def test_cycles_within_two_percent_of_the_w1once_minimum(path):
    from pathlib import Path

    from insitugen.config import load_config
    cfg = load_config(Path(__file__).resolve().parent.parent / path).replace(**ONCE)
    s = Schedule(cfg)
    assert s.cycles_per_pass == _count_cycles(cfg)
    assert s.cycles_lower_bound == s.algorithmic_minimum
    assert s.pass_cycles <= 1.02 * s.algorithmic_minimum
    assert s.w1_buffer_bits == cfg.Bo * cfg.lanes * cfg.w1_bits


def test_default_layer_w1once_figures():
    """The issue's figures: 176 level-1 cycles of 22,704 per tile, 18 tiles = 408,672
    cycles (the W1-once minimum) + latency; a 30,976-bit W1 buffer (44 x 64 x 11)."""
    s = Schedule(GeneratorConfig(**ONCE))
    assert (s.tile_level1_steps, s.w1_bubbles, s.tile_cycles) == (176, 0, 22_704)
    assert s.cycles_per_pass == 408_672 == s.algorithmic_minimum
    assert s.pass_cycles == 408_672 + s.latency
    assert s.w1_buffer_shape == (44, 64 * 11) and s.w1_buffer_bits == 30_976
    assert s.memory_bits == Schedule(GeneratorConfig()).memory_bits     # the same codes
    assert s.as_dict()["output_order"] == "tile"


@pytest.mark.parametrize("changes", [dict(base_out=1), dict(base_out=2, base_in=1, qu=3),
                                     dict(base_out=1, pipeline_stages=2), {}],
                         ids=["bo1", "bo2_one_step_blocks", "bo1_two_stages", "base"])
def test_bubbles_cover_the_buffer_hazard(changes):
    """Buffer word ``o`` is written at the edge ending cycle ``2 + p1 + p2`` after its last
    level-1 step is issued (accumulated at stage ``1 + p1 + p2``, written the cycle after)
    and read, not write-transparent, at the edge ending the issue cycle of the first
    level-2 step of ``o``, ``(Bo-1-o)*l1 + 1 + bubbles + o*l2`` cycles after that step:
    the read edge must come later, and the bubbles are the fewest that make it so."""
    cfg = _cfg(changes)
    s = Schedule(cfg)
    l1, l2 = cfg.level1_steps, cfg.level2_steps
    stages = sum(s.register_stages)

    def safe(bubbles):
        return all((cfg.Bo - 1 - o) * l1 + 1 + bubbles + o * l2 > 2 + stages
                   for o in range(cfg.Bo))
    assert safe(s.w1_bubbles)
    assert s.w1_bubbles == 0 or not safe(s.w1_bubbles - 1)


# ---- ordering helpers and the config's rules ------------------------------------------------

@pytest.mark.parametrize("p, n, lanes", [(3, 10, 4), (2, 9, 9), (4, 3, 16), (1, 1, 1),
                                         (5, 7, 1)])
def test_stream_permutation_round_trips(p, n, lanes):
    w = np.arange(p * n) * 7 - 11
    for order in ("oihw", "tile"):
        perm = stream_permutation(order, p, n, lanes)
        assert sorted(perm.tolist()) == list(range(p * n))
        s = to_stream(w, order, p, n, lanes)
        assert np.array_equal(from_stream(s, order, p, n, lanes), w)
        assert beat_counts(order, p, n, lanes).sum() == p * n
    tiles = -(-n // lanes)
    expect = [j * n + c for t in range(tiles) for j in range(p)
              for c in range(t * lanes, min(n, (t + 1) * lanes))]
    assert stream_permutation("tile", p, n, lanes).tolist() == expect


def test_golden_stream_and_oihw_agree():
    cfg = _cfg({})
    codes = random_codes(cfg, 5)
    w = generate(cfg, codes)
    s = generate_stream(cfg, codes)
    N = cfg.in_channels * cfg.K
    assert torch.equal(torch.from_numpy(from_stream(s.numpy(), "tile", cfg.out_channels, N,
                                                    cfg.lanes)), w.reshape(-1))


def test_config_rules():
    with pytest.raises(ConfigError, match="'product_order'.*'order'.*order = \"tile\""):
        GeneratorConfig(product_order="w1once")
    with pytest.raises(ConfigError, match="'product_order'.*'order'.*order = \"oihw\""):
        GeneratorConfig(order="tile")
    with pytest.raises(ConfigError, match="recombination"):
        GeneratorConfig(**ONCE, recombination="separate")
    # one level off: the same direct datapath as every order, in oihw
    for off in (dict(base_in=0), dict(base_out=0)):
        cfg = GeneratorConfig(product_order="w1once", **off)
        assert Schedule(cfg).order == "direct" and cfg.order == "oihw"
        with pytest.raises(ConfigError, match="order"):
            GeneratorConfig(product_order="w1once", order="tile", **off)
    assert GeneratorConfig(**ONCE, pipeline_stages=2).pipeline_stages == 2


def test_sidecar_names_the_output_order(tmp_path):
    import json

    from gen.verilog import write_verilog
    for changes, order in ((ONCE, "tile"), ({}, "oihw")):
        path = write_verilog(BASE.replace(**changes), tmp_path / f"{order}.v")
        side = json.loads(path.with_name(path.name + ".json").read_text())
        assert side["output_order"] == side["config"]["order"] == order
