# SPDX-License-Identifier: Apache-2.0
"""Generator Verilog under cocotb (Verilator; a few on Icarus): bit-exact, every form.

Each case emits the Verilog of a small config, builds it (cached per config),
and runs ``verif.tb_generator``: load random codes, two passes back
to back without reloading, then a reloaded second layer, every weight
compared with the golden model; with the output always ready the cycle count
must equal the design's ``pass_cycles``. Shapes are kept small: the point is
coverage of the forms, not size (the full 512x512 layer is the ``slow`` test).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from golden.codes import load_codes, random_codes, save_codes
from golden.generate import generate
from hdl.generator import Generator
from insitugen.config import GeneratorConfig, default_config
from verif.runner import run_sim

BASE = GeneratorConfig(out_channels=4, in_channels=3, kernel=3, base_in=2, base_out=3, qb=3,
                       qu=6, qv=3, engine_bits=3, lanes=4, out_bits=8, shift=6,
                       rounding="half_even")

#: name -> (config changes to BASE, back-pressure)
CASES = {
    "both_levels_fused": ({}, "none"),
    "both_levels_separate": (dict(recombination="separate"), "random"),
    "level1_off": (dict(base_in=0), "none"),
    "level1_off_separate_b5": (dict(base_in=0, qb=5, recombination="separate"), "periodic"),
    "level2_off": (dict(base_out=0), "random"),
    "level2_off_separate": (dict(base_out=0, recombination="separate"), "none"),
    "both_off": (dict(base_in=0, base_out=0, shift=1), "random"),
    "both_off_full_precision_b7": (dict(base_in=0, base_out=0, qb=7, engine_bits=2, out_bits=0,
                                        shift=0), "none"),
    "kernel1": (dict(kernel=1, in_channels=5), "none"),
    "linear": (dict(layer="linear", kernel=1, in_channels=6, out_channels=3), "periodic"),
    "bi1": (dict(base_in=1), "none"),
    "bo1": (dict(base_out=1), "random"),
    "bi1_bo1_separate": (dict(base_in=1, base_out=1, recombination="separate"), "none"),
    "bits1_engine2": (dict(engine_bits=2, qb=1, qu=5, qv=2, shift=4), "none"),
    "bits2_engine4": (dict(engine_bits=4, qb=2, qu=8, qv=7, shift=12), "random"),
    "bits5_engine2_separate": (dict(engine_bits=2, qb=5, qu=7, qv=5, lanes=7, shift=10,
                                    recombination="separate"), "none"),
    "bits7_engine5_separate": (dict(engine_bits=5, qb=7, qu=5, qv=1, shift=8,
                                    recombination="separate"), "periodic"),
    "bits6_engine6": (dict(engine_bits=6, qb=6, qu=6, qv=6, shift=14), "none"),
    "bits7_engine7": (dict(engine_bits=7, qb=7, qu=7, qv=7, shift=16), "random"),
    "bits8_engine8_separate": (dict(engine_bits=8, qb=3, qu=8, qv=8, shift=14,
                                    recombination="separate"), "none"),
    "bits8_engine3": (dict(qb=8, qu=8, qv=8, shift=16, lanes=3), "none"),
    "lanes1": (dict(lanes=1, out_channels=2), "none"),
    "lanes5_not_dividing": (dict(lanes=5), "random"),
    "lanes9_dividing": (dict(lanes=9), "none"),
    "lanes16": (dict(lanes=16, in_channels=4), "periodic"),
    "lanes16_gt_qK": (dict(lanes=16, in_channels=1), "none"),
    "lanes16_window_capped": (dict(lanes=16, in_channels=2), "random"),
    "lanes13_kernel1": (dict(lanes=13, kernel=1, in_channels=9), "none"),
    "kernel5_lanes7": (dict(kernel=5, in_channels=2, lanes=7, base_out=2), "none"),
    "floor": (dict(rounding="floor"), "none"),
    "half_up": (dict(rounding="half_up"), "random"),
    "half_even_ties": (dict(rounding="half_even", shift=1, base_out=1, base_in=1), "none"),
    "saturate_half_up": (dict(out_bits=3, shift=4, rounding="half_up"), "none"),
    "saturate_floor": (dict(out_bits=5, shift=2, rounding="floor"), "periodic"),
    "full_precision": (dict(out_bits=0, shift=0), "none"),
    "full_precision_separate": (dict(out_bits=0, shift=0, recombination="separate"), "random"),
    # the cases above run the default form (vb order, one register stage); these the others
    "vb_two_stages_separate": (dict(pipeline_stages=2, recombination="separate"), "random"),
    "w1_order": (dict(product_order="w1", pipeline_stages=0), "none"),
    # the output beat narrower than the lanes: drained through shared requantizers
    "beat2_lanes8_partial_round": (dict(lanes=8, beat_weights=2), "random"),
    "beat4_lanes16_gt_qK_half_up": (dict(lanes=16, in_channels=1, beat_weights=4,
                                         rounding="half_up"), "none"),
    "beat1_level2_off_stalls": (dict(base_out=0, lanes=8, beat_weights=1), "none"),
    "beat2_both_off_full_precision_stalls": (dict(base_in=0, base_out=0, lanes=6,
                                                  beat_weights=2, out_bits=0, shift=0),
                                             "periodic"),
    # the W1-once order: tile-major stream, a partial last tile; Bo = 1 takes bubbles
    "w1once_order": (dict(product_order="w1once", order="tile", lanes=5), "none"),
    "w1once_bo1_two_stages": (dict(product_order="w1once", order="tile", base_out=1,
                                   pipeline_stages=2), "periodic"),
    # random back-pressure stalls phase-2 round ends (the W1 slice register must hold)
    "w1once_random_backpressure": (dict(product_order="w1once", order="tile", lanes=5),
                                   "random"),
}

#: The cases the default run simulates on Verilator: these together hit every code and
#: requantization coverage bin the whole table hits and every form it holds (levels on / off
#: x recombination form, conv / linear / 1x1, lanes dividing or not, more lanes than a row,
#: one lane, full precision, every rounding mode and back-pressure pattern), checked by
#: ``test_default_cases_cover``; the other cases repeat those and run with ``--runslow``.
DEFAULT_CASES = ["lanes1", "saturate_floor", "both_off", "bits8_engine8_separate", "half_up",
                 "linear", "level1_off", "level1_off_separate_b5", "level2_off",
                 "level2_off_separate", "both_off_full_precision_b7", "lanes16_gt_qK",
                 "kernel1", "vb_two_stages_separate", "w1_order", "beat2_lanes8_partial_round",
                 "beat1_level2_off_stalls", "w1once_order"]

ICARUS_CASES = ["both_levels_fused", "both_off", "lanes5_not_dividing", "full_precision_separate",
                "beat2_both_off_full_precision_stalls", "beat2_lanes8_partial_round",
                "w1once_order", "w1once_random_backpressure"]


def _check(cfg: GeneratorConfig, res, bp: str, passes: int):
    model = Generator.figures(cfg)
    assert res.beats == passes * model.n_beats
    assert res.details["beats_per_pass"] == model.n_beats
    assert res.details["cycles_lower_bound"] == model.cycles_lower_bound
    if bp == "none":
        assert res.cycles == model.pass_cycles
    else:
        assert res.cycles >= model.pass_cycles


@pytest.mark.parametrize("name", [n if n in DEFAULT_CASES else
                                  pytest.param(n, marks=pytest.mark.slow) for n in CASES],
                         ids=list(CASES))
def test_generator_verilator(name, tmp_path):
    changes, bp = CASES[name]
    cfg = BASE.replace(**changes)
    seed = 2000 + list(CASES).index(name)
    out = tmp_path / "w.npz"
    res = run_sim(cfg, simulator="verilator", seed=seed, backpressure=bp, quiet=True,
                  extra={"passes": 2, "reload": True, "out": str(out)})
    _check(cfg, res, bp, 2)
    assert res.details["reload_checked"]
    with np.load(out) as npz:
        w = npz["W"]
        assert int(npz["cycles"]) == res.cycles
    assert w.dtype == np.int64 and w.shape == cfg.weight_shape
    assert np.array_equal(w, generate(cfg, random_codes(cfg, seed)).numpy())


def _case_features(name: str) -> set:
    """The forms a case exercises and the stimulus coverage bins (codes, requantization)
    its two layers hit, sampled as the runner samples them, without a simulator."""
    from verif.coverage import CoverageSession
    from verif.stimulus import _sample_generator_layer

    changes, bp = CASES[name]
    cfg = BASE.replace(**changes)
    row = cfg.in_channels * cfg.K
    out = {("levels", cfg.base_in > 0, cfg.base_out > 0, cfg.recombination),
           ("layer", cfg.layer, min(cfg.kernel, 3)), ("backpressure", bp),
           ("rounding", cfg.rounding), ("full precision", cfg.out_bits == 0),
           ("lanes divide the row", row % cfg.lanes == 0), ("lanes > row", cfg.lanes > row),
           ("one lane", cfg.lanes == 1),
           ("no slicing", cfg.engine_bits >= max(cfg.qb, cfg.qu, cfg.qv))}
    seed = 2000 + list(CASES).index(name)
    session = CoverageSession()
    for layer_seed in (seed, seed + 1):                   # the layer and its reload
        _sample_generator_layer(cfg, random_codes(cfg, layer_seed))
    for point, data in session.snapshot_delta().items():
        if point.startswith(("insitugen.codes.", "insitugen.requant.",
                             "insitugen.generator.product_order",
                             "insitugen.generator.pipeline_stages",
                             "insitugen.generator.recombination",
                             "insitugen.generator.beat",
                             "insitugen.generator.order")):
            out |= {(point, b) for b, hits in data["bins"].items() if hits}
    return out


def test_default_cases_cover():
    """The default run's cases exercise everything the whole table does."""
    assert set(DEFAULT_CASES) <= set(CASES) and len(set(DEFAULT_CASES)) == len(DEFAULT_CASES)
    whole = set().union(*(_case_features(n) for n in CASES))
    default = set().union(*(_case_features(n) for n in DEFAULT_CASES))
    assert default == whole, f"the default run misses {sorted(whole - default, key=str)}"


#: reset mid-load and mid-pass, then a correct pass: name of a CASES entry -> simulators
RESET_CASES = {"both_levels_fused": "verilator", "both_levels_separate": "verilator",
               "lanes5_not_dividing": "verilator", "bits7_engine5_separate": "icarus",
               "w1once_order": "verilator"}


@pytest.mark.parametrize("name", list(RESET_CASES), ids=list(RESET_CASES))
def test_generator_reset_mid_load_and_mid_pass(name):
    """Reset asserted in the middle of a load and in the middle of a pass (a beat stalled
    at that moment) leaves the design idle and unloaded; the next load, two passes back
    to back and a reload are then bit-exact, with the protocol monitors counting exactly
    one last per pass after the resets."""
    simulator = RESET_CASES[name]
    if simulator == "icarus" and shutil.which("iverilog") is None:
        pytest.skip("Icarus Verilog (iverilog) is not on PATH: apt-get install iverilog")
    changes, bp = CASES[name]
    cfg = BASE.replace(**changes)
    seed = 4000 + list(RESET_CASES).index(name)
    res = run_sim(cfg, simulator=simulator, seed=seed, backpressure=bp, quiet=True,
                  extra={"passes": 2, "reload": True, "reset_during": True})
    _check(cfg, res, bp, 2)
    assert {"reset_mid_load", "reset_mid_generation"} <= set(res.details["events"])
    weights = res.details["protocol"]["weights"]
    assert weights["valid_drops"] == weights["payload_changes"] == 0
    assert weights["lasts"] == 3                          # 2 passes + the reloaded layer
    tools = res.details["tools"]                          # what produced this result
    assert {"insitugen", "amaranth", "cocotb", "torch", simulator} <= set(tools)
    assert tools[simulator] not in ("", "unknown")


def test_generator_codes_file(tmp_path):
    """--codes: the testbench reads the file with golden.codes.load_codes."""
    cfg = BASE.replace(lanes=5, rounding="half_up")
    codes = random_codes(cfg, 99, "alternating")
    path = tmp_path / "codes.npz"
    save_codes(path, codes, sB=0.5)
    out = tmp_path / "w.npz"
    res = run_sim(cfg, simulator="verilator", seed=3, backpressure="random", quiet=True,
                  extra={"codes": str(path), "out": str(out), "passes": 1})
    _check(cfg, res, "random", 1)
    with np.load(out) as npz:
        assert np.array_equal(npz["W"], generate(cfg, load_codes(cfg, path)).numpy())


def _default_engine_layer(cfg: GeneratorConfig) -> None:
    res = run_sim(cfg, simulator="verilator", seed=11, backpressure="random", quiet=True,
                  extra={"passes": 2, "reset_during": True})
    _check(cfg, res, "random", 2)
    assert "reset_mid_generation" in res.details["events"]
    assert res.details["efficiency"] >= 0.95


def test_generator_default_engine_on_a_smaller_layer():
    """The default layer's generator (Bi, Bo, qb, qu, qv) = (2, 44, 3, 6, 3), 3-bit engine,
    64 lanes, 8-bit output) on 64 -> 48 channels instead of 128 -> 128: the same datapath,
    memories a quarter as deep, 152k cycles a pass instead of 811k. Bit-exact, >= 95%
    efficient, after a reset in the middle of its load and one in the middle of a pass
    (the full default layer: ``test_generator_default_config``, ``--runslow``)."""
    cfg = default_config().replace(out_channels=48, in_channels=64)
    assert cfg.base_out < cfg.out_channels          # both levels stay on, as in the default
    _default_engine_layer(cfg)


@pytest.mark.slow
def test_generator_w1once_default_engine_on_a_smaller_layer():
    """The W1-once order on the default layer's engine (64 lanes, Bo = 44) at 64 -> 48
    channels: bit-exact through the tile-major stream, ``--out`` in oihw, and with the
    output always ready exactly ``Schedule.pass_cycles`` (77.6k cycles, 1.0000x the W1-once
    minimum plus the latency); a Verilator build of 64 lanes, hence ``slow``."""
    from insitugen.schedule import Schedule

    cfg = default_config().replace(out_channels=48, in_channels=64, product_order="w1once",
                                   order="tile")
    s = Schedule(cfg)
    res = run_sim(cfg, simulator="verilator", seed=12, backpressure="none", quiet=True,
                  extra={"passes": 2})
    _check(cfg, res, "none", 2)
    assert res.cycles == s.pass_cycles == s.algorithmic_minimum + s.latency
    assert res.details["pass_cycles"][1] == s.cycles_per_pass


@pytest.mark.slow
def test_generator_default_config():
    """The built-in default layer (128 -> 128 3x3, 64 lanes): bit-exact, >= 95% efficient,
    after a reset in the middle of its load and one in the middle of a pass.

    2 x 811k cycles with random back-pressure: about 16 s to build (the runner compiles
    the per-cycle C++ of long layers at -O2) and 8 s to simulate on an idle core; ~35 s
    warm on a loaded 2-core machine, hence ``slow``."""
    _default_engine_layer(default_config())


@pytest.mark.icarus
@pytest.mark.parametrize("name", ICARUS_CASES, ids=ICARUS_CASES)
def test_generator_icarus(name):
    if shutil.which("iverilog") is None:
        pytest.skip("Icarus Verilog (iverilog) is not on PATH: apt-get install iverilog")
    changes, bp = CASES[name]
    cfg = BASE.replace(**changes)
    res = run_sim(cfg, simulator="icarus", seed=3000 + ICARUS_CASES.index(name),
                  backpressure=bp, quiet=True, extra={"passes": 2, "reload": True})
    _check(cfg, res, bp, 2)


@pytest.mark.slow
def test_generator_resnet18_512x512_256_lanes():
    """A full ResNet-18 512 -> 512 3x3 layer on a 256-lane engine (Verilator)."""
    cfg = default_config().replace(out_channels=512, in_channels=512, lanes=256)
    res = run_sim(cfg, simulator="verilator", seed=12, backpressure="none", quiet=True,
                  extra={"passes": 1})
    _check(cfg, res, "none", 1)
    assert res.details["efficiency"] >= 0.95


def test_two_runs_share_one_build_side_by_side(tmp_path):
    """``share_build``: two runs of one config started together (the flow's two
    simulations) build once, simulate under the shared lock, both bit-exact, and leave
    none of their own files behind."""
    import functools
    import threading

    cfg = BASE
    build = tmp_path / "build"
    out = tmp_path / "w.npz"
    calls = [functools.partial(run_sim, cfg, seed=11, backpressure="none", build_dir=build,
                               quiet=True, share_build=True, extra={"out": str(out)}),
             functools.partial(run_sim, cfg, seed=12, backpressure="random", build_dir=build,
                               quiet=True, share_build=True)]
    results: list = [None, None]
    errors: list = []

    def work(k):
        try:
            results[k] = calls[k]()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    res, res_bp = results
    _check(cfg, res, "none", 2)
    _check(cfg, res_bp, "random", 2)
    assert sorted(r.build_s > 0 for r in results) == [False, True]      # built once
    with np.load(out) as npz:
        assert np.array_equal(npz["W"], generate(cfg, random_codes(cfg, 11)).numpy())
    leftovers = [p.name for p in build.iterdir() if ".11-none-" in p.name or
                 ".12-random-" in p.name]
    assert leftovers == []
    # an exclusive run afterwards takes the same build
    again = run_sim(cfg, seed=13, backpressure="none", build_dir=build, quiet=True)
    assert again.build_s == 0.0
    _check(cfg, again, "none", 2)
