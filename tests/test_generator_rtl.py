# SPDX-License-Identifier: Apache-2.0
"""Generator RTL on Amaranth's simulator (fast tier): bit-exact against the golden model.

Every case loads a random layer (with input gaps when back-pressure is on),
regenerates it twice back to back without reloading (``start`` held two
cycles), then loads a second layer of named corner codes and generates it once.
Each pass is checked weight by weight against ``golden.generate.generate``,
beat by beat for ``count`` / ``last`` / zero unused lanes; with the output
always ready the cycle count must equal the design's own ``pass_cycles`` and
pass 2 must follow pass 1 with no bubble. The stream protocol rules
(``verif.protocol.StreamRules``) watch both streams on every clock of every
case: no valid drop, stable payload while stalled, one ``last`` per pass, every
beat and code counted.
"""

from __future__ import annotations

import pytest
from amaranth.sim import Simulator

from golden.codes import CORNERS, load_order, random_codes
from golden.generate import full_precision, generate
from hdl.generator import Generator
from insitugen.config import GeneratorConfig
from verif.backpressure import bits_levels, generators, ready_levels, valid_levels
from verif.protocol import StreamRules, add_amaranth_monitor
from verif.stimulus import generator_tb_figures
from verif.tb_generator import check_beats as _check_beats
from verif.tb_top import stream_last_bits


def code_stream(cfg, codes) -> list[int]:
    return load_order(cfg, codes).tolist()


def check_beats(cfg, dut, payloads, codes, label, seed):
    """The cocotb testbench's scoreboard, fed with the golden weights of ``codes``."""
    expected = generate(cfg, codes).numpy().reshape(-1)
    return _check_beats(generator_tb_figures(cfg), payloads, expected, label, seed)

#: small layer: 4 -> 3 channels, 3x3, (Bi, Bo, qb, qu, qv) = (2, 3, 3, 6, 3), 3-bit engine, 4 lanes
BASE = GeneratorConfig(out_channels=4, in_channels=3, kernel=3, base_in=2, base_out=3, qb=3,
                       qu=6, qv=3, engine_bits=3, lanes=4, out_bits=8, shift=6,
                       rounding="half_even")

CASES = {
    # recombination forms / levels
    "both_levels_fused": {},
    "both_levels_separate": dict(recombination="separate"),
    "level1_off": dict(base_in=0),
    "level1_off_separate_wide_b": dict(base_in=0, qb=5, recombination="separate"),
    "level2_off": dict(base_out=0),
    "level2_off_separate": dict(base_out=0, recombination="separate"),
    "both_off": dict(base_in=0, base_out=0, shift=1),
    "both_off_full_precision_wide_b": dict(base_in=0, base_out=0, qb=7, engine_bits=2,
                                           out_bits=0, shift=0),
    "kernel1": dict(kernel=1, in_channels=5),
    "linear": dict(layer="linear", kernel=1, in_channels=6, out_channels=3),
    "bi1": dict(base_in=1),
    "bo1": dict(base_out=1),
    "bi1_bo1_separate": dict(base_in=1, base_out=1, recombination="separate"),
    "kernel5_lanes7": dict(kernel=5, in_channels=2, lanes=7, base_out=2),
    # odd bitwidths and engines of 2..8 bits
    "engine2_odd_bits_separate": dict(engine_bits=2, qb=5, qu=7, qv=5, lanes=7, shift=10,
                                      recombination="separate"),
    "engine2_one_bit_b": dict(engine_bits=2, qb=1, qu=5, qv=2, shift=4),
    "engine4_wide_u": dict(engine_bits=4, qb=2, qu=8, qv=7, shift=12),
    "engine5_separate": dict(engine_bits=5, qb=7, qu=5, qv=1, shift=8, recombination="separate"),
    "engine6": dict(engine_bits=6, qb=6, qu=6, qv=6, shift=14),
    "engine7_dedicated_w1_split": dict(engine_bits=7, qb=7, qu=7, qv=7, shift=16),
    "engine8_dedicated": dict(engine_bits=8, qb=3, qu=3, qv=8, shift=10, recombination="separate"),
    # lanes 1..16: dividing q*K or not, wider than q*K, window capped at q
    "lanes1": dict(lanes=1, out_channels=2),
    "lanes5_not_dividing": dict(lanes=5),
    "lanes9_dividing": dict(lanes=9),
    "lanes16": dict(lanes=16, in_channels=4),
    "lanes16_gt_qK": dict(lanes=16, in_channels=1),
    "lanes16_window_capped": dict(lanes=16, in_channels=2),
    "lanes13_kernel1_gt_q": dict(lanes=13, kernel=1, in_channels=9),
    # requantization
    "floor": dict(rounding="floor"),
    "half_up": dict(rounding="half_up"),
    "half_even_ties": dict(rounding="half_even", shift=1, base_out=1, base_in=1),
    "saturate_half_up": dict(out_bits=3, shift=4, rounding="half_up"),
    "saturate_floor_wide_out": dict(out_bits=5, shift=2, rounding="floor"),
    "shift_wider_than_weight": dict(out_bits=4, shift=22, rounding="half_up"),
    "no_shift": dict(out_bits=12, shift=0),
    "full_precision": dict(out_bits=0, shift=0),
    "full_precision_separate": dict(out_bits=0, shift=0, recombination="separate"),
    # product orders and register stages (the cases above: vb order, one stage)
    "vb_no_stages": dict(pipeline_stages=0),
    "vb_two_stages": dict(pipeline_stages=2),
    "vb_two_stages_separate": dict(pipeline_stages=2, recombination="separate"),
    "vb_one_bit_codes": dict(qb=1, qv=1, shift=3),
    "vb_engine2_two_stages": dict(engine_bits=2, qb=3, qu=4, qv=3, lanes=5, shift=8,
                                  pipeline_stages=2),
    # a 1-bit engine: every slice is +-1, the sign-magnitude lane product has no magnitude
    "vb_engine1": dict(engine_bits=1, qb=2, qu=3, qv=2, shift=3),
    "vb_engine1_two_stages": dict(engine_bits=1, qb=1, qu=2, qv=1, shift=2, pipeline_stages=2),
    "level1_off_two_stages": dict(base_in=0, pipeline_stages=2),
    "level2_off_two_stages_separate": dict(base_out=0, pipeline_stages=2,
                                           recombination="separate"),
    "both_off_stages_ignored": dict(base_in=0, base_out=0, shift=1, pipeline_stages=2),
    "w1_order": dict(product_order="w1", pipeline_stages=0),
    "w1_order_one_stage": dict(product_order="w1"),
    "w1_order_separate_one_stage": dict(product_order="w1", recombination="separate",
                                        lanes=5),
    # the output beat narrower than the lanes (shared requantizers, drained from a bank)
    "beat2_lanes8_partial_round": dict(lanes=8, beat_weights=2),          # 27 = 3*8 + 3
    "beat1_lanes8_floor": dict(lanes=8, beat_weights=1, rounding="floor"),
    "beat4_lanes16_gt_qK": dict(lanes=16, in_channels=1, beat_weights=4),  # 9 < 16 lanes
    "beat3_lanes9_dividing_half_up": dict(lanes=9, beat_weights=3, rounding="half_up"),
    "beat2_full_precision": dict(lanes=6, beat_weights=2, out_bits=0, shift=0),
    "beat2_saturate": dict(lanes=8, beat_weights=2, out_bits=3, shift=4, rounding="half_up"),
    "beat2_w1_order": dict(lanes=8, beat_weights=2, product_order="w1"),
    "beat2_two_stages_separate": dict(lanes=8, beat_weights=2, pipeline_stages=2,
                                      recombination="separate"),
    # short rounds: fewer steps than beats, the drain stalls the datapath
    "beat1_level2_off_stalls": dict(base_out=0, lanes=8, beat_weights=1),
    "beat1_both_off_stalls": dict(base_in=0, base_out=0, shift=1, lanes=8, beat_weights=1),
    "beat2_level1_off_stalls": dict(base_in=0, lanes=8, beat_weights=2, out_bits=0, shift=0),
    # the W1-once order (tile-major stream; its own cases: tests/test_generator_w1once.py)
    "w1once_order": dict(product_order="w1once", order="tile", lanes=5),
}

#: back-pressure per case (default "none", where cycle counts are checked exactly)
BACKPRESSURE = {
    "both_levels_separate": "random", "level1_off": "periodic", "both_off": "random",
    "lanes5_not_dividing": "random", "level2_off_separate": "periodic",
    "lanes16_gt_qK": "random", "saturate_half_up": "periodic", "engine8_dedicated": "random",
    "vb_two_stages": "random", "w1_order_one_stage": "random", "level1_off_two_stages": "periodic",
    "beat2_lanes8_partial_round": "random", "beat4_lanes16_gt_qK": "random",
    "beat2_saturate": "periodic", "beat1_both_off_stalls": "random",
    "beat2_w1_order": "random",
    "w1once_order": "random",
}
SATURATING = {"saturate_half_up", "saturate_floor_wide_out", "beat2_saturate"}


def simulate(cfg: GeneratorConfig, layers: list, *, passes: int = 2, backpressure: str = "none",
             seed: int = 0, drain: str | None = None, ready_bits: str | None = None):
    """Run the DUT on Amaranth's simulator.

    Loads ``layers[0]`` and runs ``passes`` passes (pass 2 requested during pass 1),
    then each further layer once. Returns, per layer, a list of passes, each
    ``(payload ints, cycles from the start-sampling edge to its last handshake)``.
    ``ready_bits`` (a bit string, repeated) replaces the sink's ready levels of
    ``backpressure``, to place stalls where a test needs them.
    """
    dut = Generator(cfg, drain=drain)
    valid_rng, ready_rng = generators(seed)
    offers = valid_levels(backpressure, valid_rng)     # verif.backpressure, as in cocotb
    ready = (ready_levels(backpressure, ready_rng) if ready_bits is None
             else bits_levels(ready_bits))
    last_bit = stream_last_bits(cfg)["weights"]
    out = []
    wl = dut.weights

    async def tb(ctx):
        for li, codes in enumerate(layers):
            for code in code_stream(cfg, codes):
                while not next(offers):
                    ctx.set(dut.codes.valid, 0)
                    await ctx.tick()
                ctx.set(dut.codes.payload, code)
                ctx.set(dut.codes.valid, 1)
                while True:
                    _, _, rdy = await ctx.tick().sample(dut.codes.ready)
                    if rdy:
                        break
            ctx.set(dut.codes.valid, 0)
            await ctx.tick()
            assert ctx.get(dut.loaded), "loaded must rise after the last code"
            n_pass = passes if li == 0 else 1
            ctx.set(dut.start, 1)
            await ctx.tick()                      # edge 0: start sampled
            ctx.set(dut.start, int(n_pass > 1))   # held a second cycle: queues pass 2
            cycle, requested, passes_out, beats = 0, min(n_pass, 2), [], []
            pulse_at = None
            while len(passes_out) < n_pass:
                ctx.set(wl.ready, next(ready))
                if cycle == 1:
                    ctx.set(dut.start, 0)
                if pulse_at is not None and cycle == pulse_at:
                    ctx.set(dut.start, 1)
                elif pulse_at is not None and cycle == pulse_at + 1:
                    ctx.set(dut.start, 0)
                    pulse_at = None
                _, _, v, r, pl, busy, crdy = await ctx.tick().sample(
                    wl.valid, wl.ready, wl.payload.as_value(), dut.busy, dut.codes.ready)
                cycle += 1
                assert busy and not crdy, "busy must stay high (codes not ready) during a pass"
                if v and r:
                    beats.append(pl)
                    if (pl >> last_bit) & 1:
                        passes_out.append((beats, cycle))
                        beats = []
                        if requested < n_pass:
                            requested += 1
                            pulse_at = cycle
            ctx.set(wl.ready, 1)
            for _ in range(dut.steps_per_round + dut.latency + 2):
                _, _, v, busy = await ctx.tick().sample(wl.valid, dut.busy)
                assert not v, "a beat arrived after the last pass"
            assert not ctx.get(dut.busy), "busy must fall after the last beat"
            out.append(passes_out)

    weights = StreamRules("weights", last_of=lambda p: (p >> last_bit) & 1)
    codes = StreamRules("codes")
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    add_amaranth_monitor(sim, dut.weights, weights)
    add_amaranth_monitor(sim, dut.codes, codes)
    sim.run()
    n_passes = sum(len(layer) for layer in out)
    weights.check(expected_last=n_passes, expected_handshakes=n_passes * dut.n_beats)
    codes.check(expected_handshakes=sum(len(code_stream(cfg, c)) for c in layers))
    return dut, out


def run_case(cfg, seed: int, bp: str, corner: str):
    """Two passes of a random layer and one of a ``corner`` layer, each checked by the
    scoreboard; with the output always ready the cycles equal the schedule's exactly.
    Returns ``(dut, the corner layer's codes)``."""
    layer_a = random_codes(cfg, seed)
    layer_b = random_codes(cfg, seed + 1, corner)
    print(f"seed {seed}, back-pressure {bp}, reload corner {corner}")
    dut, res = simulate(cfg, [layer_a, layer_b], passes=2, backpressure=bp, seed=seed)
    (p1, c1), (p2, c2) = res[0]
    check_beats(cfg, dut, p1, layer_a, "pass 1", seed)
    check_beats(cfg, dut, p2, layer_a, "pass 2 (no reload)", seed)
    (p3, _), = res[1]
    check_beats(cfg, dut, p3, layer_b, f"reloaded layer ({corner})", seed)
    per_pass = dut.pass_period
    assert per_pass == dut.cycles_per_pass + dut.drain_stall_cycles
    if bp == "none":
        assert c1 == dut.pass_cycles, f"pass 1 took {c1} cycles, design formula {dut.pass_cycles}"
        assert c2 - c1 == per_pass, f"pass 2 took {c2 - c1} cycles after pass 1, not {per_pass}"
    else:
        assert c1 >= dut.pass_cycles
    return dut, layer_b


@pytest.mark.parametrize("name", list(CASES), ids=list(CASES))
def test_generator_bit_exact(name):
    cfg = BASE.replace(**CASES[name])
    seed = 1000 + list(CASES).index(name)
    corner = "max" if name in SATURATING else CORNERS[list(CASES).index(name) % len(CORNERS)]
    print(f"case {name}")
    dut, layer_b = run_case(cfg, seed, BACKPRESSURE.get(name, "none"), corner)
    if name.endswith("_stalls"):
        assert dut.drain_stall_cycles > 0, "the short-round case must make the drain stall"
        assert dut.drain == "bank"
    elif cfg.beat < cfg.lanes:
        assert dut.drain_stall_cycles == 0 and dut.drain == "skew"
    per_pass = dut.pass_period
    # efficiency: the only loss besides the latency is idle lanes in a row's last round
    N = cfg.in_channels * cfg.K
    if cfg.macs_per_weight and N % cfg.lanes == 0 and not dut.drain_stall_cycles:
        assert per_pass == dut.cycles_lower_bound
    assert per_pass * cfg.lanes >= cfg.n_weights * max(1, cfg.macs_per_weight)
    assert dut.cycles_lower_bound <= per_pass
    if name in SATURATING:
        lo, hi = -(1 << (cfg.out_bits - 1)), (1 << (cfg.out_bits - 1)) - 1
        w = generate(cfg, layer_b)
        assert ((w == lo) | (w == hi)).any(), "the saturation case must actually saturate"
        assert (full_precision(cfg, layer_b).abs() > (hi << cfg.shift)).any()


#: the bank drain where the skewed one would be chosen (same beats and cycles): name -> changes
BANK_CASES = {
    "bank_beat2_partial_round_random": (dict(lanes=8, beat_weights=2), "random"),
    "bank_beat4_lanes16_gt_qK": (dict(lanes=16, in_channels=1, beat_weights=4), "none"),
    "bank_beat1_w1_order_saturate": (dict(lanes=4, beat_weights=1, product_order="w1",
                                          out_bits=3, shift=4, rounding="half_up"), "periodic"),
}


@pytest.mark.parametrize("name", list(BANK_CASES), ids=list(BANK_CASES))
def test_bank_drain_replaces_the_skewed_one(name):
    """Both drains of a beat narrower than the lanes give the same beats and cycles."""
    changes, bp = BANK_CASES[name]
    cfg = BASE.replace(**changes)
    assert Generator.figures(cfg).drain == "skew"
    seed = 3000 + list(BANK_CASES).index(name)
    codes = random_codes(cfg, seed)
    dut, res = simulate(cfg, [codes], passes=2, backpressure=bp, seed=seed, drain="bank")
    (p1, c1), (p2, c2) = res[0]
    check_beats(cfg, dut, p1, codes, "pass 1 (bank)", seed)
    check_beats(cfg, dut, p2, codes, "pass 2 (bank)", seed)
    if bp == "none":
        assert (c1, c2 - c1) == (dut.pass_cycles, dut.pass_period)
    with pytest.raises(ValueError, match="drain"):
        Generator(cfg, drain="none")                 # a beat of lanes weights is not this
    with pytest.raises(ValueError, match="drain"):
        Generator(cfg.replace(beat_weights=cfg.lanes), drain="bank")


def test_three_passes_and_start_ignored_until_loaded():
    """Start before any code is ignored; three passes back to back, no bubble."""
    cfg = BASE.replace(lanes=5)
    dut = Generator(cfg)
    codes = random_codes(cfg, 7)

    async def tb(ctx):
        ctx.set(dut.start, 1)
        for _ in range(4):
            _, _, busy, v = await ctx.tick().sample(dut.busy, dut.weights.valid)
            assert not busy and not v, "start must be ignored while no layer is loaded"
        ctx.set(dut.start, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    dut2, res = simulate(cfg, [codes], passes=3, seed=7)
    cycles = [c for _, c in res[0]]
    for k, (beats, _) in enumerate(res[0]):
        check_beats(cfg, dut2, beats, codes, f"pass {k + 1}", 7)
    per_pass = dut2.pass_period
    assert cycles[0] == dut2.pass_cycles
    assert cycles[1] - cycles[0] == per_pass
    # pass 3 is requested at pass 2's last beat, after pass 3 could have begun: it starts
    # a fresh pass, so it takes at least a pass and at most a pass plus the latency more
    assert per_pass <= cycles[2] - cycles[1] <= per_pass + dut2.latency + 1


def test_properties_and_memory_bits():
    cfg = GeneratorConfig()           # the default layer
    dut = Generator.figures(cfg)      # the schedule alone: nothing is built
    assert not hasattr(dut, "elaborate")
    assert dut.lanes == 64
    assert dut.rounds_per_row == 18
    assert dut.steps_per_round == cfg.macs_per_weight == 352
    assert dut.n_beats == 128 * 18 * 64 // dut.beat
    assert dut.n_rounds == 128 * 18
    assert dut.cycles_lower_bound == 128 * 128 * 9 * 352 // 64
    assert dut.window_channels == 8
    bits = dut.memory_bits
    assert bits["V"] == 128 * 44 * 3
    assert bits["B"] == 44 * 2 * 9 * 3
    assert bits["U"] == 44 * 128 * 2 * 6              # 8 | 128: no padding
    assert sum(bits.values()) == cfg.code_memory_bits


def test_rejects_non_generator_config():
    from insitugen.config import RecombinationConfig
    with pytest.raises(TypeError, match="GeneratorConfig"):
        Generator(RecombinationConfig())


def count_enables(cfg, codes, enables_of, seed, stall_every=7):
    """Load ``codes``, run one pass with the output stalled one cycle in ``stall_every``
    and count, per name, the cycles each signal of ``enables_of(dut)`` (name -> signals)
    is high, through the pass and its drain; the pass is checked bit-exact. Returns
    ``(dut, counts)``."""
    dut = Generator(cfg)
    counts = {}

    async def tb(ctx):
        for code in code_stream(cfg, codes):
            ctx.set(dut.codes.payload, code)
            ctx.set(dut.codes.valid, 1)
            await ctx.tick()
        ctx.set(dut.codes.valid, 0)
        await ctx.tick()
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        beats, cycle = [], 0
        enables = enables_of(dut)
        seen = {name: 0 for name in enables}
        last_bit = stream_last_bits(cfg)["weights"]
        while not beats or not (beats[-1] >> last_bit) & 1:
            ctx.set(dut.weights.ready, int(cycle % stall_every != 3))
            for name, ens in enables.items():
                seen[name] += sum(ctx.get(en) for en in ens)
            _, _, v, rdy, pl = await ctx.tick().sample(dut.weights.valid, dut.weights.ready,
                                                        dut.weights.payload.as_value())
            if v and rdy:
                beats.append(pl)
            cycle += 1
        for _ in range(dut.latency + 2):
            for name, ens in enables.items():
                seen[name] += sum(ctx.get(en) for en in ens)
            await ctx.tick()
        counts.update(seen)
        check_beats(cfg, dut, beats, codes, "gated reads", seed)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return dut, counts


@pytest.mark.parametrize("changes", [{}, dict(product_order="w1", pipeline_stages=0),
                                     dict(base_in=0, pipeline_stages=2),
                                     dict(base_in=0, base_out=0)],
                         ids=["vb", "w1", "level1_off_two_stages", "both_off"])
def test_each_code_word_read_once_per_use(changes):
    """Read gating: over one pass (output stalled now and then), every memory port is
    enabled exactly ``Schedule.reads_per_pass`` times; the weights stay bit-exact."""
    cfg = BASE.replace(lanes=5, **changes)
    dut, reads = count_enables(cfg, random_codes(cfg, 21), lambda dut: dut.read_enables, 21)
    assert reads == dut.reads_per_pass, f"reads {reads}, schedule {dut.reads_per_pass}"


@pytest.mark.parametrize("sa,sx", [(1, 1), (1, 3), (2, 3), (3, 3), (4, 2)])
def test_sign_magnitude_product_is_exact(sa, sx):
    """The lanes' and the shared V*B multipliers' product of two odd values in
    sign-magnitude (the operand register's form) equals the signed product, exhaustively."""
    from amaranth.hdl import Module, Signal, signed

    from hdl.generator import _odd, _sm_from_odd, _sm_odd_product

    m = Module()
    a_bits, x_bits = Signal(sa), Signal(sx)
    prod = Signal(signed(sa + sx + 1))
    m.d.comb += prod.eq(_odd(_sm_odd_product(m, "t", _sm_from_odd(a_bits),
                                             _sm_from_odd(x_bits))))

    def odd(bits, n):                     # the value of _odd(bits): Cat(1, bits) as signed
        v = 1 + 2 * bits
        return v - (1 << (n + 1)) if v >= 1 << n else v

    async def tb(ctx):
        for a in range(1 << sa):
            for x in range(1 << sx):
                ctx.set(a_bits, a)
                ctx.set(x_bits, x)
                got = ctx.get(prod)
                assert got == odd(a, sa) * odd(x, sx), (sa, sx, a, x, got)

    sim = Simulator(m)
    sim.add_testbench(tb)
    sim.run()
