# SPDX-License-Identifier: Apache-2.0
"""The emitted RecombinationUnit Verilog under cocotb (Verilator; a subset on Icarus).

Each config runs ``verif.tb_recombination`` through
:func:`verif.runner.run_sim`: named corner cases plus random real
sliced products, every output compared with the golden model, with valid gaps
and output back-pressure. Seeds are fixed per config (printed by the runner) so
a failure replays with ``insitugen sim CONFIG --seed N``.
"""

from __future__ import annotations

import os
import re
import shutil

import pytest

from gen.verilog import emit_verilog
from insitugen.config import RecombinationConfig as R
from insitugen.errors import VerificationError
from verif.runner import run_sim

CONFIGS = {
    # name: (config, backpressure)
    "odd6x6_par_st0": (R(), "random"),
    "odd6x6_par_st1": (R(pipeline_stages=1), "periodic"),
    "odd6x6_par_st2": (R(pipeline_stages=2), "random"),
    "odd6x6_ser_st0": (R(mode="serial"), "random"),
    "odd6x6_ser_st1": (R(mode="serial", pipeline_stages=1), "periodic"),
    "single_slice_par_st0": (R(a_bits=3, x_bits=3), "none"),
    "single_slice_ser_st2": (R(a_bits=3, x_bits=3, mode="serial", pipeline_stages=2), "random"),
    "twos8_odd3_par_st1": (R(a_bits=8, a_encoding="twos", x_bits=3, pipeline_stages=1), "random"),
    "uneven_a231_twos5_par_st2": (R(a_bits=6, a_slices=(2, 3, 1), x_bits=5, x_encoding="twos",
                                    x_slices=(3, 2), pipeline_stages=2), "random"),
    "uneven_a231_twos5_ser_st1": (R(a_bits=6, a_slices=(2, 3, 1), x_bits=5, x_encoding="twos",
                                    x_slices=(3, 2), mode="serial", pipeline_stages=1), "periodic"),
    "four_by_four_e2_par_st2": (R(engine_bits=2, a_bits=8, x_bits=8, x_encoding="twos",
                                  pipeline_stages=2), "random"),
    "four_by_four_e2_ser_st0": (R(engine_bits=2, a_bits=8, x_bits=8, x_encoding="twos",
                                  mode="serial"), "random"),
    "dot4_odd6x6_par_st1": (R(terms=4, pipeline_stages=1), "random"),
    "dot9_twos7_odd4_par_st0": (R(a_bits=7, a_encoding="twos", x_bits=4, terms=9), "periodic"),
    "dot3_odd6x6_ser_st1": (R(terms=3, mode="serial", pipeline_stages=1), "random"),
    "wide12x12_e4_par_st2": (R(engine_bits=4, a_bits=12, x_bits=12, pipeline_stages=2),
                             "random"),
    "engine1_odd3x2_par_st1": (R(engine_bits=1, a_bits=3, x_bits=2, pipeline_stages=1),
                               "random"),
    "partial_bits12_par_st0": (R(partial_bits=12), "random"),
    "twos6_twos6_ser_st2": (R(a_encoding="twos", x_encoding="twos", mode="serial",
                              pipeline_stages=2), "random"),
    "w1_like_twos13_odd3_par_st2": (R(a_bits=13, a_encoding="twos", x_bits=3,
                                      pipeline_stages=2), "random"),
    "uneven_a12_x21_ser_st0": (R(engine_bits=2, a_bits=3, a_slices=(1, 2), x_bits=3,
                                 x_encoding="twos", x_slices=(2, 1), mode="serial"), "none"),
    "dot2_four_slices_ser_st2": (R(engine_bits=2, a_bits=7, x_bits=6, terms=2, mode="serial",
                                   pipeline_stages=2), "random"),
    # the rest of slices x encodings per operand (the functional coverage bins)
    "twos3_1slice_odd12_4slices_par_st1": (R(a_bits=3, a_encoding="twos", x_bits=12,
                                              pipeline_stages=1), "random"),
    "twos12_4slices_twos9_3slices_ser_st1": (R(a_bits=12, a_encoding="twos", x_bits=9,
                                                x_encoding="twos", mode="serial",
                                                pipeline_stages=1), "periodic"),
    "dot2_odd5_twos2_1slice_par_st2": (R(a_bits=5, x_bits=2, x_encoding="twos", terms=2,
                                          pipeline_stages=2), "random"),
}
ICARUS = ["odd6x6_par_st0", "uneven_a231_twos5_par_st2", "odd6x6_ser_st1",
          "dot9_twos7_odd4_par_st0"]


#: The configs the default run simulates on Verilator: ten that together still hold every
#: slice count x encoding of both operands, every mode x pipeline depth, every back-pressure
#: pattern, dot products in both modes and uneven slices (``test_default_configs_cover``);
#: the other configs repeat those bins and run with ``--runslow``.
DEFAULT = ["single_slice_par_st0", "twos8_odd3_par_st1", "four_by_four_e2_ser_st0",
           "dot3_odd6x6_ser_st1", "wide12x12_e4_par_st2", "twos6_twos6_ser_st2",
           "w1_like_twos13_odd3_par_st2", "twos3_1slice_odd12_4slices_par_st1",
           "twos12_4slices_twos9_3slices_ser_st1", "dot2_odd5_twos2_1slice_par_st2"]


def seed_of(name: str) -> int:
    return 1000 + sorted(CONFIGS).index(name)


def _seed_runtime(shared) -> None:
    """Copy the user cache's compiled Verilator run-time objects into the session cache:
    each is keyed by the Verilator binary, cocotb, the C++ compiler and the make flags
    (``verif.build._runtime_cache``), so a copy is what this session would compile, and
    a warm machine skips a ~30-90 s compile per session. The session still builds every
    design from scratch."""
    from verif.build import cache_root

    src = cache_root() / "verilator-runtime"
    dest = shared / "verilator-runtime"
    if not src.is_dir() or dest.exists():
        return
    tmp = dest.with_name(f"{dest.name}.tmp-{os.getpid()}")
    shutil.copytree(src, tmp, ignore=shutil.ignore_patterns("*.tmp-*", "*.compiling"))
    try:
        os.rename(tmp, dest)                      # another xdist worker may have won
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def insitugen_cache(tmp_path_factory):
    """One cache (Verilator run-time objects) per test session, shared by xdist workers."""
    if os.environ.get("INSITUGEN_CACHE"):
        yield
        return
    root = tmp_path_factory.getbasetemp()
    shared = (root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root) / "insitugen-cache"
    _seed_runtime(shared)
    with pytest.MonkeyPatch.context() as mp:      # restored when the session ends
        mp.setenv("INSITUGEN_CACHE", str(shared))
        yield


def check(result, cfg):
    n_random = 256
    assert result.beats == result.details["vectors"] >= n_random
    assert result.details["corner_cases"] > 0
    per = 1 if cfg.mode == "parallel" else cfg.widths.count
    assert result.details["input_beats"] == result.beats * per
    assert result.cycles >= result.details["input_beats"]


@pytest.mark.parametrize("name", [n if n in DEFAULT else pytest.param(n, marks=pytest.mark.slow)
                                  for n in CONFIGS])
def test_verilator(name, tmp_path_factory):
    cfg, bp = CONFIGS[name]
    res = run_sim(cfg, simulator="verilator", seed=seed_of(name), backpressure=bp,
                  build_dir=tmp_path_factory.mktemp(f"vl-{name}"), quiet=True)
    check(res, cfg)


@pytest.mark.icarus
@pytest.mark.parametrize("name", ICARUS)
def test_icarus(name, tmp_path_factory):
    if shutil.which("iverilog") is None:
        pytest.skip("Icarus Verilog (iverilog) is not installed: apt-get install iverilog")
    cfg, bp = CONFIGS[name]
    res = run_sim(cfg, simulator="icarus", seed=seed_of(name), backpressure=bp,
                  build_dir=tmp_path_factory.mktemp(f"iv-{name}"), quiet=True)
    check(res, cfg)


def test_config_ids_cover_the_space():
    """The table above really spans what the issue asks for."""
    cfgs = [c for c, _ in CONFIGS.values()]
    assert len(cfgs) >= 20
    assert {c.a_encoding for c in cfgs} | {c.x_encoding for c in cfgs} == {"odd", "twos"}
    every = {(n, e) for n in (1, 2, 3, 4) for e in ("odd", "twos")}
    assert {(len(c.a_slices), c.a_encoding) for c in cfgs} >= every
    assert {(len(c.x_slices), c.x_encoding) for c in cfgs} >= every
    assert any(len(set(c.a_slices)) > 1 for c in cfgs)          # uneven slices
    assert any(c.terms > 1 and c.mode == "serial" for c in cfgs)
    assert {(c.mode, c.pipeline_stages) for c in cfgs} >= {
        (m, s) for m in ("parallel", "serial") for s in (0, 1, 2)}
    assert {bp for _, bp in CONFIGS.values()} == {"none", "periodic", "random"}


def _features(cfg, bp: str) -> set:
    """What a config exercises, as :func:`test_config_ids_cover_the_space` counts it."""
    out = {("a", len(cfg.a_slices), cfg.a_encoding), ("x", len(cfg.x_slices), cfg.x_encoding),
           ("mode", cfg.mode, min(cfg.pipeline_stages, 2)), ("backpressure", bp)}
    if cfg.terms > 1:
        out.add(("dot product", cfg.mode))
    if len(set(cfg.a_slices)) > 1 or len(set(cfg.x_slices)) > 1:
        out.add(("uneven slices",))
    return out


def test_default_configs_cover():
    """The default run's subset exercises everything the whole table does."""
    assert set(DEFAULT) <= set(CONFIGS) and len(DEFAULT) == len(set(DEFAULT))
    whole = set().union(*(_features(*CONFIGS[n]) for n in CONFIGS))
    default = set().union(*(_features(*CONFIGS[n]) for n in DEFAULT))
    assert default == whole, f"the default run misses {sorted(whole - default, key=str)}"


# ---- mutation: the testbench must catch a broken adder -----------------------------

def mutate_first_adder(verilog: str) -> str:
    """Replace the first ``+`` of an ``assign`` in the adder tree by ``-``."""
    m = re.search(r"^(\s*assign [^;]*?) \+ ", verilog, flags=re.M)
    assert m, "no adder found to mutate"
    return verilog[:m.end(1)] + " - " + verilog[m.end():]


def drop_one_term(verilog: str) -> str:
    """Replace ``a + b`` in the first adder by ``a`` alone (one partial lost)."""
    m = re.search(r"^(\s*assign \S+ = )([^;+]+?) \+ ([^;]+);", verilog, flags=re.M)
    assert m, "no adder found to mutate"
    return verilog[:m.start()] + f"{m.group(1)}{m.group(2)};" + verilog[m.end():]


@pytest.mark.parametrize("mutate", [mutate_first_adder, drop_one_term],
                         ids=["plus_to_minus", "drop_term"])
def test_mutant_adder_is_caught(mutate, tmp_path_factory):
    cfg = R(pipeline_stages=1)
    good = emit_verilog(cfg)
    bad = mutate(good)
    assert bad != good
    path = tmp_path_factory.mktemp("mutant") / "mutant.v"
    path.write_text(bad)
    with pytest.raises(VerificationError, match=r"seed 77"):
        run_sim(cfg, simulator="verilator", seed=77, backpressure="none",
                build_dir=path.parent / "build", verilog_path=path, quiet=True)


# ---- runner behaviour -------------------------------------------------------------

def test_second_run_reuses_the_build(tmp_path):
    cfg = R(a_bits=3, x_bits=3, pipeline_stages=1)
    first = run_sim(cfg, simulator="verilator", seed=5, backpressure="none",
                    build_dir=tmp_path, quiet=True)
    second = run_sim(cfg, simulator="verilator", seed=6, backpressure="periodic",
                     build_dir=tmp_path, quiet=True)
    assert first.build_s > 0 and second.build_s == 0
    assert (first.seed, second.seed) == (5, 6)
    assert second.details["backpressure"] == "periodic"


def test_unknown_simulator_is_a_clear_error():
    from insitugen.errors import ToolError
    from verif.runner import find_simulator
    with pytest.raises(ToolError, match=re.escape("use one of verilator | icarus")):
        find_simulator("modelsim")


def test_missing_icarus_is_a_clear_error(monkeypatch, tmp_path):
    from insitugen.errors import ToolError
    from verif.runner import find_simulator
    monkeypatch.setenv("PATH", str(tmp_path))          # nothing on PATH
    with pytest.raises(ToolError, match="apt-get install iverilog"):
        find_simulator("icarus")


def test_failed_build_is_a_tool_error_naming_the_log(tmp_path):
    """A Verilog the simulator rejects ends in ToolError with the build log, no traceback
    from cocotb's runner (it raises a bare RuntimeError)."""
    from insitugen.errors import ToolError
    cfg = R(a_bits=3, x_bits=3)
    good = emit_verilog(cfg)
    bad = good.replace("endmodule", "  assign o__valid = no_such_signal;\nendmodule", 1)
    path = tmp_path / "broken.v"
    path.write_text(bad)
    with pytest.raises(ToolError, match=r"verilator build of .* failed .*build log: .*build\.log"):
        run_sim(cfg, simulator="verilator", seed=1, backpressure="none",
                build_dir=tmp_path / "build", verilog_path=path, quiet=True)
    assert (tmp_path / "build" / "build.log").is_file()


def test_testbenches_do_not_import_torch():
    """The golden model runs in the runner's process: the testbench modules, imported by
    the simulator's embedded Python, pull in neither torch nor the golden model."""
    import subprocess
    import sys
    code = ("import sys, verif.tb_generator, verif.tb_recombination; "
            "bad = [m for m in ('torch', 'golden', 'amaranth') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_input_monitor_mismatch_fails_the_scoreboard():
    """The scoreboard compares the beats the DUT's ports accepted with the driven ones: a
    lost, duplicated or altered beat fails it (before any output is compared)."""
    import numpy as np

    from verif.tb_recombination import _Streams, check_results

    beats = [3, 5, 7]
    vectors, expected = np.zeros((3, 1), np.int64), np.array([1, 2, 3])
    for accepted, where in (([3, 7], "2 beats for 3"), ([3, 5, 5, 7], "4 beats for 3"),
                            ([3, 6, 7], "first difference at beat 1")):
        streams = _Streams(None, beats, [], [])
        streams.accepted, streams.got = accepted, [1, 2, 3]
        with pytest.raises(AssertionError, match=where):
            check_results(None, streams, ["a", "b", "c"], vectors, expected, seed=9)
    streams = _Streams(None, beats, [], [])
    streams.accepted, streams.got = list(beats), [1, 2, 3]
    check_results(None, streams, ["a", "b", "c"], vectors, expected, seed=9)
