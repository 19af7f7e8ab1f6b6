# SPDX-License-Identifier: Apache-2.0
"""Verilog emission: deterministic bytes, no machine paths, Verilator-lint clean."""

from __future__ import annotations

import json
import re

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from gen.verilog import (
    amaranth_rtlil,
    amaranth_verilog,
    build_top,
    builtin_yosys,
    drop_zero_memory_init,
    emit_rtlil,
    emit_verilog,
    lint_verilog,
    rtlil_to_verilog,
    top_name,
    write_verilog,
)
from insitugen.config import RecombinationConfig as R
from insitugen.errors import ToolError

MACHINE_ROOTS = ("work", "tmp", "root", "home", "usr", "opt")   # folders of absolute paths

LINT_CONFIGS = {
    "odd6x6_par_st0": R(),
    "odd6x6_par_st3": R(pipeline_stages=3),
    "odd6x6_ser_st0": R(mode="serial"),
    "uneven_twos_ser_st2": R(a_bits=6, a_slices=(2, 3, 1), x_bits=5, x_encoding="twos",
                             x_slices=(3, 2), mode="serial", pipeline_stages=2),
    "single_slice_par_st2": R(a_bits=3, x_bits=3, pipeline_stages=2),
    "single_slice_ser_st0": R(a_bits=3, x_bits=3, mode="serial"),
    "dot9_four_slices_par_st1": R(engine_bits=2, a_bits=8, x_bits=7, terms=9, pipeline_stages=1),
}


@pytest.mark.parametrize("cfg", list(LINT_CONFIGS.values()), ids=list(LINT_CONFIGS))
def test_emit_twice_identical(cfg):
    """Two conversions of their own (emit_verilog converts a config once per process:
    both fresh conversions must give its text)."""
    first = amaranth_verilog(build_top(cfg), top_name(cfg)).encode()
    second = amaranth_verilog(build_top(cfg), top_name(cfg)).encode()
    assert first == second
    assert emit_verilog(cfg).encode().endswith(first)


def test_rtlil_to_verilog_is_amaranths_own_conversion():
    """Our hand-off to the bundled Yosys writes byte for byte what Amaranth's
    verilog.convert writes from the same RTLIL (its script copied, not drifted)."""
    from amaranth.back import rtlil
    from amaranth.back.verilog import _convert_rtlil_text

    cfg = LINT_CONFIGS["uneven_twos_ser_st2"]
    text = rtlil.convert(build_top(cfg), name=top_name(cfg), emit_src=False)
    with builtin_yosys():
        theirs = _convert_rtlil_text(text)
    assert rtlil_to_verilog(text) == theirs
    assert emit_rtlil(cfg) == drop_zero_memory_init(text)


class _Memories(wiring.Component):
    """A memory left at Amaranth's zero default and one with a non-zero word."""

    def __init__(self):
        super().__init__({"addr": wiring.In(2), "a": wiring.Out(8), "b": wiring.Out(8),
                          "wdata": wiring.In(8), "we": wiring.In(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.zero = zero = Memory(shape=8, depth=4, init=[])
        m.submodules.rom = rom = Memory(shape=8, depth=4, init=[0, 5, 0, 7])
        w = zero.write_port()
        m.d.comb += [w.addr.eq(self.addr), w.data.eq(self.wdata), w.en.eq(self.we)]
        for mem, out in ((zero, self.a), (rom, self.b)):
            r = mem.read_port()
            m.d.comb += [r.addr.eq(self.addr), out.eq(r.data)]
        return m


def test_zero_memory_initializers_dropped_nonzero_kept():
    text = amaranth_verilog(_Memories(), "mems")
    assert "reg [7:0] zero [3:0];" in text and "zero[0] =" not in text
    assert "rom[1] = 8'h05;" in text and "rom[3] = 8'h07;" in text
    assert amaranth_rtlil(_Memories(), "mems").count("$meminit_v2") == 1


@pytest.mark.parametrize("cfg", list(LINT_CONFIGS.values()), ids=list(LINT_CONFIGS))
def test_no_machine_paths(cfg):
    text = emit_verilog(cfg)
    assert not re.search("/(?:" + "|".join(MACHINE_ROOTS) + ")/", text)
    assert "site-packages" not in text
    assert f"module {top_name(cfg)}(" in text


def test_write_is_byte_identical_with_sidecar(tmp_path):
    cfg = R(pipeline_stages=2)
    a, b = tmp_path / "a.v", tmp_path / "sub" / "b.v"
    write_verilog(cfg, a)
    write_verilog(cfg, b)
    assert a.read_bytes() == b.read_bytes()
    assert (tmp_path / "a.v.json").read_bytes() == (tmp_path / "sub" / "b.v.json").read_bytes()
    side = json.loads((tmp_path / "a.v.json").read_text())
    assert side["config"] == cfg.to_dict()
    assert side["widths"]["shifts"] == list(cfg.widths.shifts)
    assert side["latency"] == 2
    assert side["ports"]["o__payload"] == {"dir": "out", "bits": cfg.widths.out_bits,
                                           "signed": True}
    assert side["ports"]["i__payload"]["bits"] == cfg.widths.partial_bits * cfg.widths.count
    assert {"clk", "rst", "i__valid", "i__ready", "o__valid", "o__ready"} <= set(side["ports"])
    assert not list(tmp_path.glob("**/*.tmp"))          # nothing half-written left behind


def test_every_config_has_clock_and_reset_ports():
    for cfg in LINT_CONFIGS.values():
        header = emit_verilog(cfg).split(");", 1)[0]
        assert " clk" in header and " rst" in header


@pytest.mark.parametrize("cfg", list(LINT_CONFIGS.values()), ids=list(LINT_CONFIGS))
def test_verilator_lint_clean(cfg, tmp_path):
    path = tmp_path / "design.v"
    write_verilog(cfg, path)
    lint_verilog(path)


def test_lint_reports_real_findings(tmp_path):
    path = tmp_path / "bad.v"
    path.write_text("module bad(input a, output y);\n"
                    "  assign y = a;\n  assign y = ~a;\nendmodule\n")
    with pytest.raises(ToolError, match="MULTIDRIVEN|lint"):
        lint_verilog(path)


def test_lint_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ToolError, match="does not exist"):
        lint_verilog(tmp_path / "nope.v")


@pytest.mark.parametrize("beat", [0, 2, 8], ids=["auto", "beat2", "beat8"])
def test_generator_sidecar_names_the_beat(beat, tmp_path):
    """The generator's sidecar names the weights stream's framing, and its payload port is
    that many weights wide; the skewed drain's Verilog is lint clean."""
    from insitugen.config import GeneratorConfig
    from insitugen.schedule import Schedule

    cfg = GeneratorConfig(out_channels=2, in_channels=3, base_out=2, lanes=8, beat_weights=beat)
    path = tmp_path / "g.v"
    write_verilog(cfg, path)
    side = json.loads((tmp_path / "g.v.json").read_text())
    s = Schedule(cfg)
    assert side["weights_stream"] == {"beat": s.beat, "weight_bits": 8, "beats_per_row":
                                      -(-27 // s.beat), "beats_per_pass": 2 * -(-27 // s.beat),
                                      "order": "oihw"}
    count_bits = s.beat.bit_length()
    assert side["ports"]["weights__payload"]["bits"] == s.beat * 8 + count_bits + 1
    if beat == 2:
        lint_verilog(path, top=top_name(cfg))


def test_generator_bank_drain_is_lint_clean(tmp_path):
    """Both levels off (one step per round) with 2-weight beats: the bank drain."""
    from insitugen.config import GeneratorConfig
    from insitugen.schedule import Schedule

    cfg = GeneratorConfig(out_channels=2, in_channels=3, base_in=0, base_out=0, lanes=8,
                          beat_weights=2, shift=1)
    assert Schedule(cfg).drain == "bank"
    path = tmp_path / "g.v"
    write_verilog(cfg, path)
    lint_verilog(path, top=top_name(cfg))
