# SPDX-License-Identifier: Apache-2.0
"""The schedule arithmetic (insitugen.schedule): figures checked against counts made
independently of its formulas (loops over the steps, the issue's measured figures)."""

from __future__ import annotations

import itertools

import pytest

from insitugen.config import GeneratorConfig
from insitugen.errors import ConfigError
from insitugen.schedule import Schedule


def _count_steps(cfg: GeneratorConfig) -> int:
    """Engine multiplies of one weight, counted term by term from the generation sums
    (README, The arithmetic): each product of two operands costs (slices of one) x
    (slices of the other) multiplies."""
    u, b, v = cfg.u_operand.count, cfg.b_operand.count, cfg.v_operand.count
    steps = 0
    if cfg.level1 and cfg.level2 and cfg.product_order == "vb":
        vb = cfg.vb_operand.count
        for _o, _i in itertools.product(range(cfg.Bo), range(cfg.Bi)):
            steps += u * vb                      # m_U[o,c,i] * (m_V[j,o] m_B[o,i,t])
        return steps
    if cfg.level2:
        for _o in range(cfg.Bo):
            if cfg.level1:
                steps += cfg.Bi * u * b          # W1[o,c,t], recomputed
            steps += v * cfg.w1_operand.count    # m_V[j,o] * W1[o,c,t]
        return steps
    return cfg.Bi * u * b if cfg.level1 else 0


@pytest.mark.parametrize("engine_bits, vb, w1", [(2, 792, 1056), (3, 352, 352), (4, 352, 308)],
                         ids=["engine2", "engine3", "engine4"])
def test_orders_cost_per_engine_width(engine_bits, vb, w1):
    """The default layer's multiplies per weight in each order (the issue's experiment:
    the vb order is cheaper on a 2-bit engine, dearer on a 4-bit one)."""
    cfg = GeneratorConfig(engine_bits=engine_bits)
    assert Schedule(cfg).steps_per_round == _count_steps(cfg) == vb
    w1cfg = cfg.replace(product_order="w1")
    assert Schedule(w1cfg).steps_per_round == _count_steps(w1cfg) == w1
    assert Schedule(cfg).order_macs_per_weight("w1") == w1


def test_default_layer_figures():
    """Figures of the default layer as stated in issue 11 (811,008 engine cycles + latency,
    W1-once minimum 408,672) and its memories (the codes exactly)."""
    s = Schedule(GeneratorConfig())
    assert s.order == "vb" and s.rounds_per_row == 18 and s.n_rounds == 128 * 18
    assert s.beat == 16 and s.n_beats == 128 * 18 * 4 and s.drain == "skew"
    # the narrower beat costs no cycle between rounds; the pass's last round drains in
    # its 4 beats, three cycles more than a single 64-weight beat
    assert s.pass_period == 811_008 == s.cycles_lower_bound and s.drain_stall_cycles == 0
    assert s.pass_cycles - s.latency == 811_008 + 3
    one = Schedule(GeneratorConfig(beat_weights=64))
    assert one.pass_cycles - one.latency == 811_008 and one.n_beats == 128 * 18
    assert s.algorithmic_minimum == 408_672
    assert s.memory_bits == {"B": 2376, "U": 67584, "V": 16896}
    assert s.latency == 4                                 # one register stage by default


@pytest.mark.parametrize("changes", [dict(base_in=0), dict(base_out=0),
                                     dict(base_in=0, base_out=0), dict(kernel=1, base_in=1),
                                     dict(qb=1, qv=1), dict(engine_bits=5, qu=7)],
                         ids=["level1_off", "level2_off", "both_off", "k1_bi1", "one_bit",
                              "engine5"])
def test_steps_match_the_counted_sums(changes):
    for order in ("vb", "w1"):
        cfg = GeneratorConfig(out_channels=8, in_channels=5, **changes).replace(
            product_order=order)
        s = Schedule(cfg)
        assert s.steps_per_round == max(1, _count_steps(cfg))
        # W1-free when the two orders coincide: one level off makes them the same datapath
        if not (cfg.level1 and cfg.level2):
            assert s.order == "direct"


def test_vb_code_width_holds_every_product():
    for qv, qb in itertools.product(range(1, 7), repeat=2):
        cfg = GeneratorConfig(qv=qv, qb=qb)
        top = ((1 << qv) - 1) * ((1 << qb) - 1)
        b = cfg.vb_bits
        assert (1 << b) - 1 >= top > (1 << (b - 1)) - 1 or b == 1


def test_register_stages_and_latency():
    base = GeneratorConfig(out_channels=4, in_channels=3)
    got = {k: Schedule(base.replace(pipeline_stages=k)).latency for k in (0, 1, 2)}
    assert got == {0: 3, 1: 4, 2: 5}
    off = base.replace(base_in=0, base_out=0, pipeline_stages=2)
    assert Schedule(off).latency == 3                 # nothing to pipeline without a multiply


def test_w1_order_rejects_a_product_stage():
    with pytest.raises(ConfigError, match="pipeline_stages.*product_order"):
        GeneratorConfig(product_order="w1", pipeline_stages=2)
    with pytest.raises(ConfigError, match="product_order"):
        GeneratorConfig(product_order="w2")


def test_reads_once_per_word_use():
    """Read gating: B and U once per (round, o, i), V once per (round, o)."""
    cfg = GeneratorConfig(out_channels=4, in_channels=3, base_out=5)
    s = Schedule(cfg)
    rounds = s.n_rounds
    assert s.reads_per_pass == {"B": rounds * 5 * 2, "U": rounds * 5 * 2 * 2, "V": rounds * 5}
    assert all(n < s.pass_cycles for n in (s.reads_per_pass["B"], s.reads_per_pass["V"]))


def _drain_timeline(cfg: GeneratorConfig) -> tuple[int, int]:
    """(cycles from a pass's first round end to its last beat's handshake, cycles between
    two back-to-back passes), output always ready, counted round by round: a round of
    ``n`` beats puts them in the output register one per cycle from the cycle after it
    ends; the next round can end ``steps_per_round`` cycles later, but not before the
    previous round's beats have all left."""
    S, L, b = Schedule(cfg).steps_per_round, cfg.lanes, cfg.beat
    N = cfg.in_channels * cfg.K
    beats = [-(-min(L, N - r * L) // b) for _ in range(cfg.out_channels)
             for r in range(-(-N // L))]
    t, ends = 0, []
    for _ in range(2):                            # two passes back to back
        for n in beats:
            if ends:
                t = max(t + S, ends[-1][0] + ends[-1][1])
            ends.append((t, n))
    first_pass_last = ends[len(beats) - 1]
    second_pass_last = ends[-1]
    return (first_pass_last[0] + first_pass_last[1],
            second_pass_last[0] - first_pass_last[0])


@pytest.mark.parametrize("changes", [
    dict(lanes=8, beat_weights=2), dict(lanes=8, beat_weights=1, base_out=0),
    dict(lanes=16, in_channels=1, beat_weights=4), dict(lanes=6, beat_weights=2, base_in=0,
                                                        base_out=0),
    dict(lanes=12, beat_weights=3, base_in=0), dict(lanes=9, beat_weights=9)],
    ids=["skew", "bank_stalls", "lanes_gt_row", "both_off_stalls", "level1_off", "one_beat"])
def test_drain_cycles_match_a_round_by_round_count(changes):
    """pass_cycles / pass_period with the drain, against the round-by-round count; the
    difference to one beat per round is the drain alone (the latency is the same)."""
    cfg = GeneratorConfig(**{"out_channels": 3, "in_channels": 3, "base_out": 3, **changes})
    s = Schedule(cfg)
    one = Schedule(cfg.replace(beat_weights=cfg.lanes))
    first, period = _drain_timeline(cfg)
    first_one, period_one = _drain_timeline(cfg.replace(beat_weights=cfg.lanes))
    assert s.pass_period == period and one.pass_period == period_one
    assert s.pass_cycles - one.pass_cycles == first - first_one
    assert s.pass_period - one.pass_period == s.drain_stall_cycles
    assert (s.drain_stall_cycles > 0) == (s.drain == "bank")
    assert s.n_beats * s.beat >= cfg.n_weights > (s.n_beats - cfg.out_channels) * s.beat


def test_beat_weights_field():
    """0 = auto (4 beats per round from 32 lanes, 2 from 16, fewer where they do not divide
    the lanes or a round is shorter, else 1); otherwise a divisor of lanes, refused in one
    line naming the field."""
    assert GeneratorConfig(lanes=64).beat == 16
    assert GeneratorConfig(lanes=256).beat == 64
    assert GeneratorConfig(lanes=16).beat == 8
    assert GeneratorConfig(lanes=8).beat == 8
    assert GeneratorConfig(lanes=18).beat == 9
    assert GeneratorConfig(lanes=34).beat == 17                         # 4 does not divide 34
    assert GeneratorConfig(lanes=33).beat == 11 and GeneratorConfig(lanes=17).beat == 17
    assert GeneratorConfig(lanes=16, base_in=0, base_out=0).beat == 16   # 1 step per round
    # 3 steps per round: 3 beats of 12 lanes would stall, 2 do not
    short = GeneratorConfig(lanes=36, base_in=0, base_out=3)
    assert Schedule(short).steps_per_round == 3 and short.beat == 12
    assert Schedule(short).drain == "skew"
    assert GeneratorConfig(lanes=64, beat_weights=16).beat == 16
    with pytest.raises(ConfigError, match=r"'beat_weights' = 24 does not divide lanes = 64.*"
                                          r"\[1, 2, 4, 8, 16, 32, 64\]"):
        GeneratorConfig(beat_weights=24)
    with pytest.raises(ConfigError, match=r"'beat_weights' = 65 is out of range.*\[0, 64\]"):
        GeneratorConfig(beat_weights=65)
    with pytest.raises(ConfigError, match="'beat_weights' must be an integer"):
        GeneratorConfig(beat_weights=2.0)
