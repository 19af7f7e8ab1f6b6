# SPDX-License-Identifier: Apache-2.0
"""Formal proofs (Yosys SAT) of the recombination unit and the requantizer.

Each proof is exhaustive over its (small) input widths; the mutants check that
the harness can fail at all and that its counterexample is a real one (replayed
on the golden model).
"""

from __future__ import annotations

import argparse
import json

import pytest

from flows.commands import prove as prove_command
from golden import arith as G
from insitugen.config import ROUNDINGS, GeneratorConfig
from insitugen.config import RecombinationConfig as R
from insitugen.errors import ConfigError, ToolError
from verif import formal

# (id, config, method): odd/twos, slice counts 1-3, uneven slices, parallel/serial,
# pipeline stages 0-2, terms 1-2; sizes kept small so the file runs in about a minute.
RECOMBINATIONS = [
    ("odd3x3-one-slice", R(engine_bits=3, a_bits=3, x_bits=3), "product"),
    ("odd4x4-2x2-stage1", R(engine_bits=2, a_bits=4, x_bits=4, pipeline_stages=1), "product"),
    ("twos4x4-2x2-stage2", R(engine_bits=2, a_bits=4, a_encoding="twos", x_bits=4,
                             x_encoding="twos", pipeline_stages=2), "product"),
    ("odd5-twos4-3x2", R(engine_bits=2, a_bits=5, x_bits=4, x_encoding="twos"), "product"),
    ("uneven-odd5-131-x-twos4-31", R(engine_bits=3, a_bits=5, a_slices=(1, 3, 1), x_bits=4,
                                     x_encoding="twos", x_slices=(3, 1), pipeline_stages=1),
     "product"),
    ("odd6x6-default", R(), "product"),
    ("serial-odd4x4", R(engine_bits=2, a_bits=4, x_bits=4, mode="serial"), "product"),
    ("serial-twos4-odd3-stage1", R(engine_bits=2, a_bits=4, a_encoding="twos", x_bits=3,
                                   mode="serial", pipeline_stages=1), "product"),
    ("serial-uneven-12-x-211-stage2", R(engine_bits=2, a_bits=3, a_slices=(1, 2), x_bits=4,
                                        x_encoding="twos", x_slices=(2, 1, 1), mode="serial",
                                        pipeline_stages=2), "product"),
    ("terms2-odd3x3", R(engine_bits=2, a_bits=3, x_bits=3, terms=2), "product"),
    ("terms2-serial-twos3-odd3-stage1", R(engine_bits=1, a_bits=3, a_encoding="twos",
                                          x_bits=3, terms=2, mode="serial",
                                          pipeline_stages=1), "product"),
    ("twos5-twos4-3x2-stage2", R(engine_bits=2, a_bits=5, a_encoding="twos", x_bits=4,
                                 x_encoding="twos", pipeline_stages=2), "product"),
    ("decomposed-odd8-twos8-terms5-stage1", R(engine_bits=4, a_bits=8, x_bits=8,
                                              x_encoding="twos", terms=5, pipeline_stages=1),
     "decomposed"),
    ("decomposed-serial-odd7-odd5-terms3", R(engine_bits=3, a_bits=7, x_bits=5, terms=3,
                                             mode="serial"), "decomposed"),
]


@pytest.mark.parametrize("cfg,method", [c[1:] for c in RECOMBINATIONS],
                         ids=[c[0] for c in RECOMBINATIONS])
def test_recombination_proven(cfg, method):
    rep = formal.prove(cfg, method=method)
    assert rep.proven, rep.summary()
    assert rep.counterexample is None
    assert rep.method == method
    assert rep.yosys_version.startswith("Yosys")
    assert rep.depth >= 2                      # two groups from reset (plus the latency)
    if method == "decomposed":
        assert [p.proven for p in rep.parts] == [True, True, True]


REQUANT = [(bits, out_bits, shift, rounding)
           for rounding in ROUNDINGS
           for bits, out_bits, shift in ((12, 5, 3), (10, 8, 1), (9, 4, 0), (24, 8, 10))]


@pytest.mark.parametrize("bits,out_bits,shift,rounding", REQUANT,
                         ids=[f"{r}-{b}to{o}-s{s}" for b, o, s, r in REQUANT])
def test_requantizer_proven(bits, out_bits, shift, rounding):
    rep = formal.prove_requantizer(bits, out_bits, shift, rounding)
    assert rep.proven, rep.summary()
    assert rep.depth == 0 and rep.counterexample is None


def test_requantizer_full_precision_proven():
    rep = formal.prove_requantizer(10, 0, 0, "floor")
    assert rep.proven and "unchanged" in rep.statement


def test_slicing_identity_wide():
    from insitugen import widths as W
    for op in (W.SlicedOperand("odd", 40, W.default_slice_widths(40, 3)),
               W.SlicedOperand("twos", 48, W.default_slice_widths(48, 5))):
        assert formal.prove_slicing(op).proven


def _cex_at(rep, name, cycle):
    return rep.counterexample[name][cycle]


def test_drop_slice_mutant_fails_with_real_counterexample():
    cfg = R(engine_bits=2, a_bits=4, x_bits=4)
    rep = formal.prove(cfg, mutant="drop_slice")
    assert not rep.proven
    assert set(rep.counterexample) == {"a0", "x0"}
    # Replay on the golden model: with the top slice pair dropped, at least one
    # checked cycle's operands must give a wrong product (latency 0: same cycle).
    wrong = False
    for t in range(len(rep.counterexample["a0"])):
        a, x = _cex_at(rep, "a0", t), _cex_at(rep, "x0", t)
        parts = G.sliced_partials(a, x, cfg.a, cfg.x)
        parts[-1] = parts[-1] * 0
        got = int(G.recombine(parts, cfg.widths.shifts))
        want = int(G.odd_value(a, 4) * G.odd_value(x, 4))
        wrong |= got != want
    assert wrong, rep.counterexample
    assert "counterexample" in rep.summary()


def test_drop_slice_mutant_fails_serial_and_decomposed():
    rep = formal.prove(R(engine_bits=2, a_bits=4, x_bits=3, mode="serial", pipeline_stages=1),
                       mutant="drop_slice")
    assert not rep.proven and rep.counterexample
    rep = formal.prove(R(engine_bits=3, a_bits=7, x_bits=5, terms=3), mutant="drop_slice",
                       method="decomposed")
    assert not rep.proven and not rep.parts[0].proven
    assert rep.parts[0].counterexample and all(p.proven for p in rep.parts[1:])


def test_late_valid_mutant_fails():
    rep = formal.prove(R(engine_bits=2, a_bits=3, x_bits=3, pipeline_stages=1),
                       mutant="late_valid")
    assert not rep.proven and rep.counterexample


def test_bad_arguments_are_config_errors():
    with pytest.raises(ConfigError, match="mutant"):
        formal.prove(R(), mutant="nope")
    with pytest.raises(ConfigError, match="method"):
        formal.prove(R(), method="nope")
    with pytest.raises(ConfigError, match="RecombinationConfig"):
        formal.prove(GeneratorConfig())
    with pytest.raises(ConfigError, match="rounding"):
        formal.prove_requantizer(8, 4, 2, "banker")


def test_generator_recombination_configs():
    cfg = GeneratorConfig()
    rcs = formal.generator_recombination_configs(cfg)
    assert set(rcs) == {"level1", "level2"}
    assert rcs["level1"].a == cfg.u_operand and rcs["level1"].x == cfg.b_operand
    assert rcs["level1"].terms == cfg.Bi
    assert rcs["level2"].a == cfg.v_operand and rcs["level2"].x == cfg.w1_operand
    assert rcs["level2"].terms == cfg.Bo
    off = GeneratorConfig(base_in=0, base_out=0, out_bits=0, shift=0)
    assert formal.generator_recombination_configs(off) == {}


def _args(path, **kw):
    parser = argparse.ArgumentParser()
    prove_command.add_args(parser)
    extra = [f"--{k}={v}" for k, v in kw.items()]
    return parser.parse_args([str(path), *extra])


def test_cmd_prove_recombination_and_generator(tmp_path, capsys):
    small = tmp_path / "rec.toml"
    small.write_text(R(engine_bits=2, a_bits=3, x_bits=3, mode="serial").to_toml())
    out_json = tmp_path / "proofs.json"
    assert prove_command.run(_args(small, json=out_json)) == 0
    text = capsys.readouterr().out
    assert "proven" in text and "Yosys" in text
    assert '"result": "proven"' in out_json.read_text()
    tools = json.loads(out_json.read_text())[0]["tools"]       # versions behind the proof
    assert tools["yosys"].startswith("Yosys") and tools["amaranth"] and tools["insitugen"]
    assert prove_command.run(_args(small, mutant="drop_slice")) == 0   # mutant caught
    assert "caught" in capsys.readouterr().out

    gen = tmp_path / "gen.toml"
    gen.write_text(GeneratorConfig(out_channels=4, in_channels=4, base_in=2, base_out=3,
                                   qb=2, qu=3, qv=2, engine_bits=2, out_bits=6,
                                   shift=2).to_toml())
    assert prove_command.run(_args(gen)) == 0
    text = capsys.readouterr().out
    assert "requantizer" in text and "level1" in text and "level2" in text


def test_generator_too_wide_for_a_unit_proves_slicing_only():
    cfg = GeneratorConfig(qu=16, qb=16, qv=4, base_in=64, base_out=64, engine_bits=4,
                          out_bits=8, shift=20)
    reps = formal.prove_generator(cfg)
    assert [r.name for r in reps] == ["requantizer", "level1 recombination", "level2 slicing"]
    assert all(r.proven for r in reps)
    assert "slicing identities" in reps[2].statement and len(reps[2].parts) == 2


# ---- the Yosys runner (eda.yosys) the proofs share with synthesis -----------------------

def test_run_script_failed_script_is_returned_or_raised(tmp_path):
    from eda.yosys import run_script
    run = run_script("read_verilog missing.v\n", tmp_path, check=False)
    assert run.returncode != 0
    assert any("missing.v" in ln for ln in run.error_lines())
    with pytest.raises(ToolError, match="Yosys failed on the script .*missing.v"):
        run_script("read_verilog missing.v\n", tmp_path)
    with pytest.raises(ToolError, match="produced no 'never.txt'"):
        run_script("tee -q -o other.txt help\n", tmp_path, expect_files=["never.txt"])


def test_run_script_timeout_and_missing_yosys_are_tool_errors(tmp_path):
    from eda.yosys import run_script
    with pytest.raises(ToolError, match="did not finish the proof 'p' within .* narrower"):
        run_script("help\n", tmp_path, timeout=0.001, what="the proof 'p'",
                   timeout_hint="use narrower operands")
    with pytest.raises(ToolError, match="yosys executable 'no-such-yosys' was not found"):
        run_script("help\n", tmp_path, yosys="no-such-yosys")
