# SPDX-License-Identifier: Apache-2.0
"""``insitugen network``: generation cycles equal the RTL's simulated cycles, the closed-form
convolution model, the three model sources, the energy table and its validation, the files.

The simulation test builds three tiny layers (one per generator form a network gives:
both levels, level 1 off on a 1x1 conv, a cross-only linear) from a tiny model through
the same path the command uses, simulates each on Verilator with the output always ready,
and compares the simulated cycles with the cycles the report uses.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from flows.cli import main
from flows.network import energy as E
from flows.network.analysis import Clock, analyse
from flows.network.engine import Engine
from flows.network.generation import code_reads, generation_cycles, generation_cycles_lower_bound
from flows.network.layers import (
    NetworkError,
    from_checkpoint,
    from_export_folder,
    from_shipped,
    layers_of_model,
    trace_shapes,
)
from flows.network.report import FILES, to_csv, to_dict, to_markdown, to_text
from golden.mlgify import mlgify, save_checkpoint
from insitugen.config import GeneratorConfig

HW = dict(engine_bits=3, lanes=64, out_bits=8, shift=10)
MLG = dict(base_in=2, base_out=44, qb=3, qu=6, qv=3)


class TinyNet(nn.Module):
    """conv3x3 (2->6) - conv1x1 (6->6, stride 2) - pool - linear (6->5) - linear (5->3)."""

    def __init__(self):
        super().__init__()
        self.conv0 = nn.Conv2d(2, 6, 3, padding=1, bias=False)
        self.conv1 = nn.Conv2d(6, 6, 1, stride=2, bias=False)
        self.fc = nn.Linear(6, 5, bias=False)
        self.classifier = nn.Linear(5, 3)

    def forward(self, x):
        x = self.conv1(torch.relu(self.conv0(x)))
        return self.classifier(torch.relu(self.fc(x.mean((2, 3)))))


def _tiny_layers(**hardware):
    model = TinyNet()
    trace = trace_shapes(model, 2, 6)
    mlgify(model, 1, 3, 2, 3, 2)
    hw = dict(engine_bits=2, lanes=4, out_bits=6, shift=3, **hardware)
    return layers_of_model(model, trace, hw)


def _analyse(layers, batch=1, engine=None, table=E.DEFAULT_TABLE):
    engine = engine or Engine(3, 64)
    return analyse("m", layers, engine, Clock(100.0, "test"), batch=batch, bandwidth_gbs=25.6,
                   table=table, settings={})


# ---- generation cycles == simulated cycles ---------------------------------------------------

def test_tiny_model_forms():
    layers = {r.name: r for r in _tiny_layers()}
    assert [n for n, r in layers.items() if r.generated] == ["conv0", "conv1", "fc"]
    c0, c1, fc = layers["conv0"].cfg, layers["conv1"].cfg, layers["fc"].cfg
    assert (c0.level1, c0.level2) == (True, True)
    assert (c1.level1, c1.level2, c1.kernel) == (False, True, 1)
    assert (fc.layer, fc.level1, fc.level2) == ("linear", False, True)
    assert not layers["classifier"].generated and "classifier" in layers["classifier"].reason
    assert layers["conv0"].out_hw == (6, 6) and layers["conv1"].out_hw == (3, 3)


@pytest.mark.parametrize("name", ["conv0", "conv1", "fc"])
def test_generation_cycles_equal_simulated_cycles(name):
    from verif.runner import run_sim

    layer = {r.name: r for r in _tiny_layers()}[name]
    res = run_sim(layer.cfg, simulator="verilator", seed=1200 + len(name), backpressure="none",
                  quiet=True)
    assert res.cycles == generation_cycles(layer.cfg)
    assert _analyse([layer]).layers[0].gen_cycles == res.cycles
    assert res.details["cycles_lower_bound"] == generation_cycles_lower_bound(layer.cfg)


def test_default_layer_matches_benchmarks():
    """layer2.0.conv2 of ResNet-18 is the default 128->128 3x3 layer: 128 rows x 18 rounds
    x 352 steps + 4 cycles of latency (the default form, one register stage) + 3 (the
    pass's last round leaves in four 16-weight beats) = 811,015 cycles per pass, as
    simulated (BENCHMARKS.md section 10)."""
    layers = {r.name: r for r in from_shipped("resnet18", MLG, HW)}
    cfg = layers["layer2.0.conv2"].cfg
    assert cfg == GeneratorConfig()
    assert generation_cycles(cfg) == 128 * 18 * 352 + 4 + 3 == 811_015


# ---- the convolution model ---------------------------------------------------------------------

def test_slices_per_mac():
    assert Engine(3, 64).slices_per_mac == 9              # ceil(8/3)^2
    assert Engine(4, 16, act_bits=8, weight_bits=4).slices_per_mac == 2
    assert Engine(8, 1).slices_per_mac == 1
    assert Engine(3, 64, act_bits=4, weight_bits=7).slices_per_mac == 2 * 3


def test_conv_cycles_closed_form_and_batch():
    layers = from_shipped("resnet18", MLG, HW)
    one, four = _analyse(layers), _analyse(layers, batch=4)
    by_name = {r.layer.name: r for r in one.layers}
    r = by_name["layer4.0.conv2"]
    assert r.layer.out_hw == (4, 4)
    assert r.macs == 4 * 4 * 512 * 512 * 9
    assert r.conv_cycles == math.ceil(4 * 4 * 512 * 512 * 9 * 9 / 64)
    assert by_name["layer1.0.conv1"].layer.out_hw == (32, 32)
    assert by_name["layer2.0.shortcut.0"].macs == 16 * 16 * 128 * 64
    for a, b in zip(one.layers, four.layers, strict=True):
        assert b.macs == 4 * a.macs
        assert b.conv_cycles == math.ceil(4 * a.macs * 9 / 64)
        assert b.gen_cycles == a.gen_cycles                # one generation pass per batch


def test_depthwise_layers_are_fetched_and_computed():
    rows = {r.name: r for r in from_shipped("mobilenetv2", MLG, HW)}
    dw = rows["layers.0.conv2"]
    assert not dw.generated and "depthwise" in dw.reason
    assert dw.groups == 32 and dw.weight_shape == (32, 1, 3, 3)
    res = _analyse([dw])
    assert res.layers[0].macs == 32 * 32 * 32 * 9
    assert res.layers[0].gen_cycles == 0
    assert res.layers[0].shared_s == res.layers[0].overlapped_s == res.layers[0].fetch_layer_s


def test_break_even_feature_map():
    res = _analyse(from_shipped("resnet18", MLG, HW), batch=2)
    for r in res.layers:
        if not r.generated:
            assert r.break_even_positions is None
            continue
        # at the break-even number of output positions the convolution takes the
        # generation's cycles
        per_position = r.layer.weights * 9 / 64
        assert r.break_even_positions * 2 * per_position == pytest.approx(r.gen_cycles)
        assert ("conv" in r.bottleneck) == (r.layer.positions < r.break_even_positions)


def test_layers_the_generator_cannot_take_are_fetched():
    rows = from_shipped("resnet18", {**MLG, "qb": 32, "qu": 32, "qv": 32}, HW)
    conv = next(r for r in rows if r.name == "layer1.0.conv1")
    assert not conv.generated and "cannot take" in conv.reason and "qb = 32" in conv.reason


# ---- sources: checkpoint and export folder give the same report ------------------------------

def test_checkpoint_and_export_folder(tmp_path):
    from gen.export import export_model
    from golden.models import build_model

    model = build_model("smallcnn", 10, 1)
    mlgify(model, **MLG)
    ckpt = tmp_path / "s.pt"
    save_checkpoint(ckpt, model, "smallcnn", 10, 1, MLG)
    export_model(model, tmp_path / "layers")
    shipped = from_shipped("smallcnn", MLG, HW)
    from_ckpt, info = from_checkpoint(ckpt, HW)
    folder, model_name = from_export_folder(tmp_path / "layers", HW)
    assert model_name == "smallcnn" and info["mlg"] == MLG
    key = [(r.name, r.weight_shape, r.out_hw, r.cfg) for r in shipped]
    assert [(r.name, r.weight_shape, r.out_hw, r.cfg) for r in from_ckpt] == key
    assert [(r.name, r.weight_shape, r.out_hw, r.cfg) for r in folder] == key
    assert any(r.generated for r in shipped) and any(not r.generated for r in shipped)


def test_export_folder_errors(tmp_path):
    with pytest.raises(NetworkError, match="no layers.json"):
        from_export_folder(tmp_path, HW)
    (tmp_path / "layers.json").write_text("{}")
    with pytest.raises(NetworkError, match="not an index"):
        from_export_folder(tmp_path, HW)
    cfg = GeneratorConfig(out_channels=7, in_channels=5, kernel=3)
    (tmp_path / "x.toml").write_text(cfg.to_toml())
    (tmp_path / "layers.json").write_text(json.dumps(
        {"layers": {"x": {"config": "x.toml"}}, "not_exported": {}}))
    with pytest.raises(NetworkError, match="match no shipped model"):
        from_export_folder(tmp_path, HW)


# ---- energy ------------------------------------------------------------------------------------

def _full_table(**changes):
    data = {k: f.value for k, f in E.DEFAULT_TABLE.items()}
    data.update(changes)
    return data


def test_energy_operation_rules():
    t = E.DEFAULT_TABLE
    assert E.mult_pj(t, 8) == pytest.approx(0.2) and E.mult_pj(t, 32) == pytest.approx(3.1)
    assert E.mult_pj(t, 4) == pytest.approx(0.05)
    assert E.add_pj(t, 8) == pytest.approx(0.03) and E.add_pj(t, 32) == pytest.approx(0.1)
    assert E.add_pj(t, 20) == pytest.approx(0.065) and E.add_pj(t, 64) == pytest.approx(0.2)
    assert t["dram_pj_per_bit"].value * 8 == pytest.approx(160.0)   # the 8-bit fetch
    assert all(f.source for f in t.values()) and all(f.source for f in E.IHP_SRAM.values())


def test_generation_energy_counts():
    cfg = GeneratorConfig()
    g = E.generation_energy(cfg, E.DEFAULT_TABLE)
    n = cfg.n_weights
    assert g.multiplies == pytest.approx(n * cfg.macs_per_weight * E.mult_pj(E.DEFAULT_TABLE, 4))
    reads = code_reads(cfg)
    rounds = 128 * math.ceil(128 * 9 / 64)
    assert reads.words == {"B": rounds * 44 * 2, "U": 2 * rounds * 44 * 2, "V": rounds * 44}
    assert g.code_reads == pytest.approx(reads.bits * 10 / 64)
    # a table with zero memory energy leaves only the arithmetic
    zero = E.table_from_mapping(_full_table(sram_codes_pj_per_bit=0), "t")
    assert E.generation_energy(cfg, zero).code_reads == 0


def test_user_table_overrides(tmp_path):
    p = tmp_path / "e.toml"
    lines = [f"{k} = {v}" for k, v in _full_table(dram_pj_per_bit=40.0).items() if k != "add_8b_pj"]
    lines.append('add_8b_pj = { value = 0.05, source = "my node" }')
    p.write_text("\n".join(lines) + "\n")
    t = E.load_table(p)
    assert t["dram_pj_per_bit"].value == 40.0 and "user table" in t["dram_pj_per_bit"].source
    assert t["add_8b_pj"].value == 0.05 and t["add_8b_pj"].source.startswith("my node")
    j = tmp_path / "e.json"
    j.write_text(json.dumps(_full_table()))
    assert E.load_table(j)["mult_8b_pj"].value == 0.2
    res = _analyse(from_shipped("smallcnn", MLG, HW), table=t)
    r = next(r for r in res.layers if r.generated)
    assert r.energy["dram"] == pytest.approx(r.layer.weights * 8 * 40.0)


@pytest.mark.parametrize("data, match", [
    (_full_table(dram_pj_per_bit=-1.0), "'dram_pj_per_bit' = -1.0 is negative"),
    ({k: v for k, v in _full_table().items() if k != "mult_32b_pj"}, "'mult_32b_pj' is missing"),
    (_full_table(sram_pj=1.0), "unknown entry 'sram_pj'"),
    (_full_table(add_8b_pj="cheap"), "'add_8b_pj' = 'cheap' must be a number"),
    (_full_table(add_8b_pj={"source": "x"}), "'add_8b_pj' must be a number or"),
], ids=["negative", "missing", "unknown", "not_a_number", "no_value"])
def test_bad_energy_tables(data, match):
    with pytest.raises(E.EnergyTableError, match=match):
        E.table_from_mapping(data, "t")


# ---- the command -------------------------------------------------------------------------------

def test_command_writes_every_file(tmp_path, capsys):
    out = tmp_path / "net"
    assert main(["network", "smallcnn", "--out", str(out), "--batch", "2"]) == 0
    text = capsys.readouterr().out
    assert "smallcnn" in text and "cycles: generation" in text and str(out) in text
    for name in FILES + ("network_time.png", "network_energy.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "network_time.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((out / "network.json").read_text())
    layers = data["layers"]
    assert data["totals"]["gen_cycles"] == sum(r["gen_cycles"] for r in layers)
    assert data["totals"]["conv_cycles"] == sum(r["conv_cycles"] for r in layers)
    assert data["batch"] == 2 and data["clock_source"].startswith("default")
    assert all(v["source"] for v in data["energy_table"].values())
    with open(out / "network.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["layer"] for r in rows] == [r["layer"] for r in layers]
    assert "## Energy figures" in (out / "network.md").read_text()


def test_report_formats_agree():
    res = _analyse(from_shipped("resnet18", MLG, HW))
    d = to_dict(res)
    assert d["totals"]["gen_cycles"] == sum(r.gen_cycles for r in res.layers)
    text = to_text(res)
    assert len(text.splitlines()) < 45                      # one screen
    assert all(len(line) <= 120 for line in text.splitlines())
    assert to_csv(res).count("\n") == len(res.layers) + 1
    assert to_markdown(res).count("| layer4.0.conv2 |") == 1


def test_clock_from_synth_json(tmp_path, capsys):
    rep = {"config": {"engine_bits": 3, "lanes": 64},
           "designs": {"generator": {"liberty": {"delay_estimate": 5.0},
                                     "pdk_free": {"logic_depth": 30}}}}
    p = tmp_path / "r.json"
    p.write_text(json.dumps(rep))
    out = tmp_path / "o"
    assert main(["network", "smallcnn", "--synth-json", str(p), "--out", str(out)]) == 0
    data = json.loads((out / "network.json").read_text())
    assert data["clock_mhz"] == pytest.approx(200.0) and "5.000 ns" in data["clock_source"]
    rep["designs"]["generator"].pop("liberty")
    p.write_text(json.dumps(rep))
    assert main(["network", "smallcnn", "--synth-json", str(p), "--out", str(out)]) == 0
    from synth.timing import PDK_FREE_NS_PER_LEVEL
    data = json.loads((out / "network.json").read_text())
    assert data["clock_mhz"] == pytest.approx(1000 / (30 * PDK_FREE_NS_PER_LEVEL))


@pytest.mark.parametrize("argv, match", [
    (["nosuchnet"], "unknown model 'nosuchnet'"),
    (["resnet18", "--out-bits", "0"], "--out-bits 0"),
    (["resnet18", "--batch", "0"], "--batch = 0"),
    (["resnet18", "--clock-mhz", "-5"], "--clock-mhz = -5"),
    (["resnet18", "--lanes", "0"], "lanes = 0"),
    (["resnet18", "--engine-bits", "40"], "engine_bits = 40"),
    (["resnet18", "--base-in", "-1"], "base_in = -1"),
    (["resnet18", "--input-size", "0"], "--input-size = 0"),
    (["resnet18", "--clock-mhz", "100", "--synth-json", "r.json"], "not both"),
    (["resnet18", "--synth-json", "missing.json"], "does not exist"),
    (["resnet18", "--energy-table", "missing.toml"], "does not exist"),
], ids=["unknown_model", "out_bits_0", "batch_0", "clock_negative", "lanes_0",
        "engine_bits_40", "base_in_negative", "input_size_0", "clock_and_synth",
        "synth_missing", "table_missing"])
def test_bad_input_one_line(argv, match, tmp_path, capsys):
    assert main(["network", *argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("insitugen: error:") and match in err[0]
    assert not (tmp_path / "o").exists()


def test_bad_energy_table_and_synth_engine_one_line(tmp_path, capsys):
    t = tmp_path / "e.toml"
    t.write_text("\n".join(f"{k} = {v}" for k, v in _full_table(add_32b_pj=-0.1).items()))
    assert main(["network", "smallcnn", "--energy-table", str(t), "--out",
                 str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'add_32b_pj' = -0.1 is negative" in err[0]
    r = tmp_path / "r.json"
    r.write_text(json.dumps({"config": {"engine_bits": 4, "lanes": 64},
                             "designs": {"generator": {}}}))
    assert main(["network", "smallcnn", "--synth-json", str(r), "--out",
                 str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "4-bit x 64-lane" in err[0]


def test_mlg_flags_refused_for_a_checkpoint(tmp_path, capsys):
    from golden.models import build_model

    model = build_model("smallcnn", 10, 1)
    mlgify(model, **MLG)
    ckpt = tmp_path / "s.pt"
    save_checkpoint(ckpt, model, "smallcnn", 10, 1, MLG)
    assert main(["network", str(ckpt), "--qb", "4", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--qb applies to shipped model names only" in err[0]
    assert main(["network", str(ckpt), "--out", str(tmp_path / "o")]) == 0


def test_shipped_example_table_matches_the_ihp_figures():
    root = Path(__file__).resolve().parent.parent
    t = E.load_table(root / "examples" / "network" / "energy_ihp_sram.toml")
    for k, f in E.IHP_SRAM.items():
        assert t[k].value == pytest.approx(f.value)
    for k in ("mult_8b_pj", "mult_32b_pj", "add_8b_pj", "add_32b_pj", "dram_pj_per_bit"):
        assert t[k].value == pytest.approx(E.DEFAULT_TABLE[k].value)


# ---- measured energy (gate-level switching activity) -------------------------------------------

VCD = """$timescale 1ps $end
$scope module insitugen_tb_top $end
$scope module dut $end
$var wire 1 ! clk $end
$var wire 1 " start $end
$var wire 1 # loaded $end
$var wire 1 $ weights__valid $end
$var wire 1 % weights__ready $end
$var wire 3 & weights__payload [2:0] $end
$scope module c_1 $end
$var wire 1 ' Y $end
$var wire 1 ( A $end
$upscope $end
$upscope $end
$upscope $end
$enddefinitions $end
#0
0!
0"
1#
0$
1%
b000 &
0'
0(
#5
1!
#10
0!
1"
#12
1'
#15
1!
0'
#20
0!
0"
#22
1'
1(
#25
1!
#30
0!
1$
b100 &
#32
0'
#35
1!
#40
0!
1'
#45
1!
"""


def test_read_activity_counts_the_first_pass(tmp_path):
    from flows.network.activity import read_activity

    vcd = tmp_path / "d.vcd"
    vcd.write_text(VCD)
    act = read_activity(vcd, ["c_1"], last_bit=2)
    # start is sampled by the edge at 15, the beat with last (bit 2) by the edge at 35
    assert act.window == (15, 35) and act.cycles == 2
    y, a = act.pins[("c_1", "Y")], act.pins[("c_1", "A")]
    assert (act.rises.get(y, 0), act.falls.get(y, 0)) == (1, 2)     # 12 and 40 are outside
    assert (act.rises.get(a, 0), act.falls.get(a, 0)) == (1, 0)


def test_read_activity_without_a_pass(tmp_path):
    from flows.network.activity import read_activity
    from insitugen.errors import ToolError

    vcd = tmp_path / "d.vcd"
    vcd.write_text(VCD.replace('1"', '0"'))
    with pytest.raises(ToolError, match="no complete generation pass"):
        read_activity(vcd, ["c_1"], last_bit=2)


LIB = """library (tiny) {
  nom_voltage : 1.2;
  cell (inv_x) {
    area : 1.0;
    cell_leakage_power : 50.0;
    pin (A) { direction : input; capacitance : 0.002; }
    pin (Y) {
      direction : output;
      function : "!A";
      internal_power () {
        related_pin : "A";
        rise_power (t) { index_1 ("0.0, 0.2"); index_2 ("0.0, 0.1");
          values ("0.001, 0.003", "0.002, 0.004"); }
        fall_power (t) { index_1 ("0.0, 0.2"); index_2 ("0.0, 0.1");
          values ("0.002, 0.002", "0.002, 0.002"); }
      }
    }
  }
}
"""


def test_read_power_tables(tmp_path):
    from flows.network.activity import NOMINAL_SLEW_NS, read_power

    lib = tmp_path / "t.lib"
    lib.write_text(LIB)
    cells, volt = read_power(lib)
    assert volt == 1.2
    inv = cells["inv_x"]
    assert inv.capacitance == {"A": 0.002} and inv.outputs == ["Y"] and inv.leakage_pw == 50.0
    # bilinear: at slew s and load 0.05, rise = 0.001 + 0.005*s + 0.02*0.05
    s = NOMINAL_SLEW_NS
    assert inv.pins["Y"].energy(True, 0.05) == pytest.approx(0.001 + 0.005 * s + 0.001)
    assert inv.pins["Y"].energy(False, 0.05) == pytest.approx(0.002)
    assert inv.pins["A"].energy(True, 0.0) == 0.0


def test_measure_flags_need_each_other(tmp_path, capsys):
    for argv, match in ((["--measure-energy"], "needs --liberty"),
                        (["--liberty", "x.lib"], "--measure-energy only")):
        assert main(["network", "smallcnn", *argv, "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and match in err[0]


@pytest.mark.slow
def test_measured_energy_of_the_builtin_layer(liberty_path, tmp_path):
    """Synthesis + gate-level simulation (about a minute): the mapped netlist is bit-exact,
    its first pass takes the schedule's cycles, every cell pin is in the VCD."""
    from flows.network.activity import MEASURE_CONFIG, measure

    m = measure(MEASURE_CONFIG, liberty_path, tmp_path / "m", clock_mhz=183.2)
    assert m["gate_level_bit_exact"] and m["pins_not_in_vcd"] == 0 and m["cells"] > 100
    assert m["pass_cycles_simulated"] == generation_cycles(MEASURE_CONFIG)
    e = m["energy_pj"]
    assert all(e[k] > 0 for k in ("internal", "switching", "clock_pins", "clock_net"))
    assert e["total_logic"] == pytest.approx(sum(v for k, v in e.items() if k != "total_logic"))
    assert m["logic_pj_per_weight"] == pytest.approx(e["total_logic"] / MEASURE_CONFIG.n_weights)


def test_generator_form_options_reach_every_layer(tmp_path):
    """--product-order / --pipeline-stages set the form of every generated layer (the w1
    order takes 308 steps per weight on a 4-bit engine, vb 352); a form the generator
    cannot build is one error line, not a network of fetched layers."""
    from flows.cli import main

    def gen_cycles(*extra):
        out = tmp_path / "_".join(extra or ("default",))
        assert main(["network", "smallcnn", "--engine-bits", "4", "--out", str(out),
                     *extra]) == 0
        return json.loads((out / "network.json").read_text())["totals"]["gen_cycles"]

    vb, w1 = gen_cycles(), gen_cycles("--product-order", "w1", "--pipeline-stages", "0")
    assert w1 < vb
    assert main(["network", "smallcnn", "--product-order", "w1", "--pipeline-stages", "2",
                 "--out", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()
