# SPDX-License-Identifier: Apache-2.0
"""mlgify and memory accounting: ResNet-18 (CIFAR) against a hand computation and
Table 2 of the MLG paper; the per-layer report; the ``insitugen memory`` command function."""

from __future__ import annotations

import argparse
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from flows.commands import memory as memory_command
from golden.memory import memory_report, model_memory
from golden.mlg import MLGConv2d, MLGLinear, QuantConv2d, QuantLinear
from golden.mlgify import mlgify
from golden.models import build_model, count_parameters
from insitugen.errors import InsitugenError

# ResNet-18 CIFAR by hand: (in, out) of every 3x3 conv after the stem, of every 1x1 shortcut
CONV3 = [(64, 64)] * 4 + [(64, 128)] + [(128, 128)] * 3 + [(128, 256)] + [(256, 256)] * 3 \
    + [(256, 512)] + [(512, 512)] * 3
SHORTCUT = [(64, 128), (128, 256), (256, 512)]
BN_CHANNELS = 64 + 4 * 64 + 5 * 128 + 5 * 256 + 5 * 512   # stem, 4 convs + shortcut per stage


def hand_resnet18(bi, bo, qb, qu, qv, num_classes=10, classifier_bits=8):
    """(stored bits, FP32 bits, stored params, full params), computed from the rule by hand."""
    full = 3 * 64 * 9 + sum(ci * co * 9 for ci, co in CONV3) + sum(ci * co for ci, co in SHORTCUT)
    full += 512 * num_classes + 2 * BN_CHANNELS
    # stem 3 -> 64: min(64, 27) <= Bo = 44, so intra-kernel only: B [64, 2, 9], U [64, 3, 2]
    bits = 64 * bi * 9 * qb + 64 * 3 * bi * qu
    params = 64 * bi * 9 + 64 * 3 * bi
    for ci, co in CONV3:              # both levels: B [Bo, Bi, 9], U [Bo, ci, Bi], V [co, Bo]
        bits += bo * bi * 9 * qb + bo * ci * bi * qu + co * bo * qv
        params += bo * bi * 9 + bo * ci * bi + co * bo
    for ci, co in SHORTCUT:           # 1x1, cross only: B [Bo, ci, 1], V [co, Bo]
        bits += bo * ci * qb + co * bo * qv
        params += bo * ci + co * bo
    bits += 512 * num_classes * classifier_bits + 2 * BN_CHANNELS * 32
    params += 512 * num_classes + 2 * BN_CHANNELS
    return bits, full * 32, params, full


def test_resnet18_parameter_count():
    assert count_parameters(build_model("resnet18")) == 11_173_952
    assert hand_resnet18(2, 44, 3, 6, 3)[3] == 11_173_952


@pytest.mark.parametrize("setting,classes,mem_ratio,param_ratio", [
    ((2, 44, 3, 6, 3), 10, 0.0080, 0.0497),
    ((2, 44, 8, 8, 8), 10, 0.0131, 0.0497),
    ((2, 44, 32, 32, 32), 10, 0.0497, 0.0497),
    ((2, 44, 3, 6, 3), 100, 0.0090, 0.0536),
    ((2, 44, 8, 8, 8), 100, 0.0140, 0.0536),
    ((2, 44, 32, 32, 32), 100, 0.0536, 0.0536),
], ids=["c10_2-44-3-6-3", "c10_2-44-8-8-8", "c10_float", "c100_2-44-3-6-3", "c100_2-44-8-8-8",
        "c100_float"])
def test_resnet18_memory_matches_hand_computation_and_paper(setting, classes, mem_ratio,
                                                           param_ratio):
    rep = model_memory("resnet18", *setting, num_classes=classes)
    cls_bits = 32 if setting[2:] == (32, 32, 32) else 8
    bits, fp32, params, full = hand_resnet18(*setting, num_classes=classes,
                                             classifier_bits=cls_bits)
    assert rep.bits_stored == bits
    assert rep.bits_fp32 == fp32
    assert rep.params_stored == params
    assert rep.params_full == full
    assert round(rep.memory_ratio, 4) == mem_ratio          # the MLG paper's Table 2
    assert round(rep.param_ratio, 4) == param_ratio


def test_resnet18_hand_values():
    # spelled out once for (2, 44, 3, 6, 3), C10: 358,400 bytes of 44,695,808
    bits, fp32, _, _ = hand_resnet18(2, 44, 3, 6, 3)
    assert bits == 358_400 * 8 and fp32 == 44_695_808 * 8
    assert 358_400 / 44_695_808 == pytest.approx(0.0080186, abs=1e-7)
    bits8, _, _, _ = hand_resnet18(2, 44, 8, 8, 8)
    assert bits8 == 584_320 * 8
    assert 584_320 / 44_695_808 == pytest.approx(0.013073, abs=1e-6)


def test_int8_baseline():
    rep = model_memory("resnet18", 2, 44, 3, 6, 3)
    weights = 11_173_952 - 9600
    assert rep.bits_int8 == weights * 8 + 9600 * 32
    assert rep.memory_ratio_int8 == pytest.approx(rep.bits_stored / rep.bits_int8)


def test_mlgify_resnet18_report():
    model = build_model("resnet18")
    report = mlgify(model, 2, 44, 3, 6, 3)
    by_name = {c.name: c for c in report.layers}
    assert len(report.layers) == 21
    assert len(report.generated) == 20
    assert by_name["conv1"].levels == "intra" and by_name["conv1"].base_out == 0
    assert by_name["layer2.0.shortcut.0"].levels == "cross"
    assert by_name["layer3.1.conv2"].levels == "intra+cross"
    assert by_name["linear"].action == "classifier"
    assert isinstance(model.linear, QuantLinear) and model.linear.bits == 8
    assert isinstance(model.layer2[0].shortcut[0], MLGConv2d)
    assert "| layer1.0.conv1 | 64x64x3x3 | generated (intra+cross) |" in report.to_markdown()
    out = model(torch.zeros(1, 3, 32, 32))
    assert out.shape == (1, 10)


def test_mlgify_conv1x1_model_rule_and_float_layers():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.pw = nn.Conv2d(16, 8, 1)                         # Bo 44 >= min -> int(0.9*8)=7
            self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)     # depthwise: stays float
            self.rect = nn.Conv2d(8, 8, (1, 3))                   # non-square: stays float
            self.hidden = nn.Linear(64, 64)                       # cross-only MLGLinear
            self.head = nn.Linear(64, 3)                          # classifier

        def forward(self, x):
            x = self.rect(self.dw(self.pw(x)))
            return self.head(torch.relu(self.hidden(x.flatten(1)[:, :64])))

    net = Net()
    bias = net.pw.bias.detach().clone()
    head_w = net.head.weight.detach().clone()
    dw_w = net.dw.weight.detach().clone()
    report = mlgify(net, 2, 44, 4, 4, 4)
    by_name = {c.name: c for c in report.layers}
    assert isinstance(net.pw, MLGConv2d) and net.pw.base_out == 7 and net.pw.base_in == 0
    assert torch.equal(net.pw.bias, bias)                         # biases carried over
    # no level on: the whole weight quantized at w_bit = 8 in the forward pass (the
    # reference's MLG conv with generation off), here against the dorefa_sym formula
    assert type(net.dw) is QuantConv2d and net.dw.bits == 8 and "depthwise" in by_name["dw"].reason
    assert by_name["dw"].action == "quantized"
    t = torch.tanh(dw_w)
    r = t.abs().max()
    expect = torch.round(255 * (t / (2 * r) + 0.5)) / 255 * (2 * r) - r
    torch.testing.assert_close(net.dw.quantized_weight(), expect, rtol=0, atol=1e-6)
    x = torch.randn(1, 8, 5, 5)
    torch.testing.assert_close(net.dw(x), F.conv2d(x, expect, net.dw.bias, padding=1, groups=8),
                               rtol=1e-5, atol=1e-5)
    assert type(net.rect) is QuantConv2d and "non-square" in by_name["rect"].reason
    assert isinstance(net.hidden, MLGLinear) and net.hidden.base_out == 44
    assert isinstance(net.head, QuantLinear) and torch.equal(net.head.weight, head_w)
    assert net(torch.randn(2, 16, 4, 6)).shape == (2, 3)
    rep = memory_report(net)
    rows = {r.name: r for r in rep.layers}
    assert rows["dw"].bits_stored == 8 * (8 * 9) + 32 * 8         # insitugen: at its 8 bits
    assert rows["head"].bits_stored == 8 * 64 * 3 + 32 * 3        # 8-bit classifier, fp32 bias
    assert rows["head"].kind == "classifier" and rows["dw"].kind == "quantized"
    assert rows["pw"].bits_stored == 7 * 16 * 4 + 8 * 7 * 4 + 32 * 8
    # the reference gate counts a layer that is not generated at 4 bytes per weight
    ref = Net()
    mlgify(ref, 2, 44, 4, 4, 4, gate="reference")
    rows = {r.name: r for r in memory_report(ref).layers}
    assert rows["dw"].bits_stored == 32 * (8 * 9 + 8)
    assert rows["pw"].bits_stored == 7 * 16 * 4 + 8 * 7 * 4 + 32 * 8


def test_reference_gate_float_factors_memory_and_forward():
    """Reference gate, w_bit >= 16: B, U, V used raw (qb/qu/qv ignored), counted at 32."""
    torch.manual_seed(3)
    conv = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.Flatten(),
                         nn.Linear(32, 4))
    report = mlgify(conv, 2, 8, 3, 6, 3, w_bit=32, gate="reference")
    m = conv[0]
    assert m.float_factors and report.settings()["gate"] == "reference"
    assert report.classifier_bits == 32                           # the classifier at w_bit
    w = (m.coeff_out @ (m.coeff_in @ m.basis.reshape(8, 2, 9)).reshape(8, -1))
    torch.testing.assert_close(m.generated_weight(), w.reshape(32, 16, 3, 3))
    row = {r.name: r for r in memory_report(conv).layers}["0"]
    assert row.bits_stored == 32 * (8 * 2 * 9 + 8 * 16 * 2 + 32 * 8)
    # w_bit < 16: the same gate quantizes at qb/qu/qv, counted at those widths
    q = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.Flatten(),
                      nn.Linear(32, 4))
    mlgify(q, 2, 8, 3, 6, 3, w_bit=8, gate="reference")
    assert not q[0].float_factors and q[2].bits == 8
    row = {r.name: r for r in memory_report(q).layers}["0"]
    assert row.bits_stored == 3 * 8 * 2 * 9 + 6 * 8 * 16 * 2 + 3 * 32 * 8
    with pytest.raises(InsitugenError, match="gate = 'paper'"):
        mlgify(nn.Sequential(nn.Conv2d(16, 32, 3)), 2, 8, 3, 6, 3, gate="paper")


def test_mlgify_rejects_bad_settings():
    with pytest.raises(InsitugenError, match="base_in"):
        mlgify(build_model("smallcnn"), -1, 4, 3, 6, 3)
    with pytest.raises(InsitugenError, match="qu"):
        mlgify(build_model("smallcnn"), 2, 4, 3, 0, 3)


def test_cmd_memory_prints_table_and_json(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    memory_command.add_args(parser)
    out = tmp_path / "mem.json"
    args = parser.parse_args(["resnet18", "--base-in", "2", "--base-out", "44", "--qb", "3",
                              "--qu", "6", "--qv", "3", "--json", str(out)])
    assert memory_command.run(args) == 0
    text = capsys.readouterr().out
    assert "| layer4.1.conv2 | 512x512x3x3 |" in text
    assert "**0.0080**" in text and "param ratio 0.0497" in text
    data = json.loads(out.read_text())
    assert round(data["summary"]["memory_ratio_fp32"], 4) == 0.0080
    assert len(data["layers"]) == 22          # 21 conv / linear rows + one BatchNorm row
