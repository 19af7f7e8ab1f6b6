# SPDX-License-Identifier: Apache-2.0
"""Export: MLG checkpoint -> per-layer generator configs + codes, regenerated bit-exactly
by the golden model and by the RTL (``verif.runner.run_sim``)."""

from __future__ import annotations

import argparse
import json
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from gen.export import export_checkpoint, export_model
from golden.codes import load_codes
from golden.generate import full_precision, generate
from golden.mlg import mlg_layers
from golden.mlgify import CheckpointError, build_mlg_model, load_checkpoint, save_checkpoint
from insitugen.config import load_config
from insitugen.errors import InsitugenError

SEED = 77
MLG = dict(base_in=2, base_out=8, qb=3, qu=6, qv=3)


def _trained_like(model, seed=SEED):
    """Random latent values (as if trained), BatchNorm statistics included."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return model


@pytest.fixture
def smallcnn_checkpoint(tmp_path):
    model, report = build_mlg_model("smallcnn", 10, 1, MLG)
    _trained_like(model)
    path = tmp_path / "student.pt"
    save_checkpoint(path, model, "smallcnn", 10, 1, report.settings())
    return path, model


def test_checkpoint_roundtrip(smallcnn_checkpoint):
    path, model = smallcnn_checkpoint
    loaded, info = load_checkpoint(path)
    assert info["mlg"]["base_out"] == 8 and info["model"]["name"] == "smallcnn"
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    model.eval()
    assert torch.equal(loaded(x), model(x))


def test_checkpoint_refuses_pickled_objects(tmp_path):
    path = tmp_path / "evil.pt"
    # any non-allowlisted class needs a real unpickler; weights_only refuses it
    torch.save({"format": "insitugen-mlg-checkpoint", "payload": argparse.Namespace(a=1)}, path)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_checkpoint(path)
    bad = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, bad)
    with pytest.raises(CheckpointError, match="not an insitugen MLG checkpoint"):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_export_then_golden_equals_layer_generation(smallcnn_checkpoint, tmp_path):
    path, model = smallcnn_checkpoint
    out = tmp_path / "export"
    index = export_checkpoint(path, out)
    layers = dict(mlg_layers(model))
    assert set(index["layers"]) == set(layers)
    assert "classifier" in index["not_exported"]
    on_disk = json.loads((out / "layers.json").read_text())
    assert on_disk == json.loads(json.dumps(index))
    for name, layer in layers.items():
        cfg = load_config(out / f"{name}.toml")
        assert cfg == layer.generator_config()
        codes = load_codes(cfg, out / f"{name}.npz")
        with np.load(out / f"{name}.npz", allow_pickle=False) as npz:
            scale = float(np.prod([npz[k] for k in ("sB", "sU", "sV") if k in npz.files]))
        w_int = full_precision(cfg, codes).reshape(layer.weight_shape)
        assert torch.equal(w_int, layer.integer_weight())
        assert torch.equal(generate(cfg, codes), w_int)            # out_bits = 0: no requant
        w_float = layer.generated_weight().detach().double()
        assert torch.allclose(scale * w_int.double(), w_float, rtol=1e-5,
                              atol=1e-6 * w_float.abs().max().item())
        assert scale == pytest.approx(index["layers"][name]["scale"])
        assert index["layers"][name]["output_order"] == cfg.order == "oihw"


def test_export_hardware_fields(smallcnn_checkpoint, tmp_path):
    path, _ = smallcnn_checkpoint
    index = export_checkpoint(path, tmp_path / "e", engine_bits=4, lanes=8, out_bits=8, shift=9,
                              beat_weights=2)
    name = next(iter(index["layers"]))
    cfg = load_config(tmp_path / "e" / f"{name}.toml")
    assert (cfg.engine_bits, cfg.lanes, cfg.out_bits, cfg.shift) == (4, 8, 8, 9)
    assert cfg.beat_weights == 2 and index["layers"][name]["beat"] == 2   # the beat named


def test_export_refuses_float_widths_and_writes_nothing(tmp_path):
    model, report = build_mlg_model("smallcnn", 10, 1, dict(MLG, qu=32))
    path = tmp_path / "float.pt"
    save_checkpoint(path, model, "smallcnn", 10, 1, report.settings())
    out = tmp_path / "export"
    with pytest.raises(InsitugenError, match="qu = 32"):
        export_checkpoint(path, out)
    assert not out.exists() or not any(out.iterdir())


def test_export_refuses_plain_model(tmp_path):
    with pytest.raises(InsitugenError, match="no generated MLG layer"):
        export_model(nn.Sequential(nn.Conv2d(3, 4, 3)), tmp_path / "x")


@pytest.mark.icarus
def test_export_rtl_regenerates_layer_bit_exactly(tmp_path):
    """End to end: export one small layer, run the generator RTL on its codes, compare the
    RTL's weights with the PyTorch layer's integer generation."""
    if shutil.which("iverilog") is None:
        pytest.skip("iverilog (Icarus Verilog) is not on PATH")
    from verif import runner

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
            self.head = nn.Linear(4, 2)

        def forward(self, x):
            return self.head(self.conv(x).mean((2, 3)))

    from golden.mlgify import mlgify
    net = Tiny()
    mlgify(net, 2, 3, 3, 6, 3)           # 3 -> 4 conv: Bi = 2 < min(3, 9), Bo = 3 < min(4, 27)
    _trained_like(net, SEED + 1)
    assert net.conv.level1 and net.conv.level2
    out = tmp_path / "export"
    export_model(net, out, lanes=4)
    cfg = load_config(out / "conv.toml")
    weights = tmp_path / "W.npz"
    seed = 20261129
    print(f"RTL export check seed {seed}")
    runner.run_sim(cfg, simulator="icarus", seed=seed, build_dir=tmp_path / "build",
                   extra={"codes": str(out / "conv.npz"), "out": str(weights)}, quiet=True)
    with np.load(weights, allow_pickle=False) as npz:
        w_rtl = torch.from_numpy(npz["W"].astype(np.int64)).reshape(net.conv.weight_shape)
    assert torch.equal(w_rtl, net.conv.integer_weight())
