# SPDX-License-Identifier: Apache-2.0
"""The two training recipes (issue 15): every place where ``--recipe reference`` follows the
MLG reference code, pinned to values computed by hand or from the reference's formula;
the quantizer edges where ours differs on purpose; export refusals; CIFAR-10's Python
batches."""

from __future__ import annotations

import argparse
import json
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from flows.commands import memory as memory_command
from flows.commands import train_cifar as train_cifar_command
from gen.export import export_model
from golden.datasets import DataError, load_cifar10, normalize_cifar
from golden.mlg import (
    ExportError,
    MLGConv2d,
    QuantConv2d,
    QuantLinear,
    quantize,
    quantize_model,
)
from golden.mlgify import load_checkpoint, mlgify
from golden.train import (
    approximation_loss,
    make_optimizer,
    make_student,
    make_teacher,
    project_gradient,
)
from golden.train_settings import (
    CIFAR_STD_REFERENCE,
    RECIPES,
    CifarSettings,
    DigitsSettings,
    TrainSettings,
)
from insitugen.errors import InsitugenError

SEED = 11


def dorefa_sym(x: torch.Tensor, bits: int) -> torch.Tensor:
    """The reference's dorefa_sym for 2..16 bits, written from its formula."""
    t = torch.tanh(x)
    r = t.abs().max()
    n = 2 ** bits - 1
    return torch.round(n * (t / (2 * r) + 0.5)) / n * (2 * r) - r


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1, bias=False)     # no level on: w_bit
        self.conv = nn.Conv2d(4, 16, 3, padding=1, bias=False)    # both levels at (2, 4)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        x = F.relu(self.conv(F.relu(self.stem(x))))
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))


# ---------------------------------------------------------------------------------
# 5. teacher, 3. projection target / last iterate / default
# ---------------------------------------------------------------------------------
def test_reference_teacher_is_15_bit_dorefa():
    torch.manual_seed(SEED)
    teacher, bits = make_teacher("smallcnn", 10, 1, "reference")
    assert bits == 15
    layers = [m for m in teacher.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert layers and all(isinstance(m, (QuantConv2d, QuantLinear)) and m.bits == 15
                          for m in layers)
    w = layers[1].weight.detach()
    torch.testing.assert_close(layers[1].quantized_weight(), dorefa_sym(w, 15), rtol=0,
                               atol=1e-7)
    plain, bits = make_teacher("smallcnn", 10, 1, "insitugen")
    assert bits == 32 and type(plain.features[0]) is nn.Conv2d
    r = RECIPES["reference"]
    assert (r.cifar_teacher_optimizer, r.cifar_teacher_lr, r.digits_teacher_lr) == \
        ("radam", 2e-3, 2e-3)


def test_projection_target_is_teacher_forward_weight():
    """Target = dorefa-15(tanh(w)) of a 15-bit teacher, summed over every conv / linear."""
    torch.manual_seed(SEED)
    teacher = Tiny()
    quantize_model(teacher, 15)
    student, _ = make_student(teacher, 2, 4, 3, 6, 3, gate="reference")
    assert isinstance(student.conv, MLGConv2d) and isinstance(student.stem, QuantConv2d)
    expect = 0.0
    for name in ("stem", "conv", "head"):
        t = dorefa_sym(getattr(teacher, name).weight.detach(), 15)
        m = getattr(student, name)
        w = m.generated_weight() if name == "conv" else m.quantized_weight()
        expect += F.mse_loss(w.detach().reshape(-1), t.reshape(-1)).item()
    got = approximation_loss(student, teacher).item()
    assert got == pytest.approx(expect, rel=1e-6)
    # the raw float weights are a different target
    raw = sum(F.mse_loss(getattr(student, n).weight.detach().reshape(-1) if n != "conv"
                         else student.conv.generated_weight().detach().reshape(-1),
                         getattr(teacher, n).weight.detach().reshape(-1)).item()
              for n in ("stem", "conv", "head"))
    assert raw != pytest.approx(got, rel=1e-9)


def test_gradient_projection_keep_last_is_plain_radam_loop():
    """keep='last' (the reference): the parameters after exactly n RAdam(lr 2e-2) steps."""
    torch.manual_seed(SEED)
    teacher = Tiny()
    a, _ = make_student(teacher, 2, 4, 3, 6, 3)
    b, _ = make_student(teacher, 2, 4, 3, 6, 3)
    b.load_state_dict(a.state_dict())
    n = 7
    loss_last = project_gradient(a, teacher, steps=n, keep="last")
    # the loop written out: the same loss, RAdam over the latent tensors, no selection
    targets = {k: getattr(teacher, k).weight.detach() for k in ("stem", "conv", "head")}
    params = [b.stem.weight, b.conv.basis, b.conv.coeff_in, b.conv.coeff_out, b.head.weight]
    opt = torch.optim.RAdam(params, lr=2e-2)
    for _ in range(n):
        loss = (F.mse_loss(b.stem.quantized_weight().reshape(-1), targets["stem"].reshape(-1))
                + F.mse_loss(b.conv.generated_weight().reshape(-1), targets["conv"].reshape(-1))
                + F.mse_loss(b.head.quantized_weight().reshape(-1), targets["head"].reshape(-1)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    for (ka, pa), (kb, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb
        torch.testing.assert_close(pa, pb, rtol=0, atol=0)
    assert loss_last == pytest.approx(approximation_loss(b, teacher).item(), rel=1e-6)
    with pytest.raises(InsitugenError, match="keep = 'first'"):
        project_gradient(a, teacher, steps=1, keep="first")


def test_projection_defaults_per_recipe():
    assert DigitsSettings().projection_method() == "svd+gradient"
    assert DigitsSettings(recipe="reference").projection_method() == "gradient"
    # the reference projects only inside its KD branch
    assert DigitsSettings(recipe="reference", kd=False).projection_method() == "none"
    assert DigitsSettings(recipe="reference", kd=False, projection="svd").projection_method() \
        == "none"
    assert DigitsSettings(kd=False, projection="svd").projection_method() == "svd"
    assert RECIPES["reference"].projection_keep == "last"
    assert RECIPES["insitugen"].projection_keep == "best"
    with pytest.raises(InsitugenError, match="recipe 'paper'"):
        DigitsSettings(recipe="paper").mlg()


# ---------------------------------------------------------------------------------
# 4. decoupled weight decay
# ---------------------------------------------------------------------------------
def _decay_only(decoupled: bool, steps: int, lr=2e-3, wd=5e-4) -> torch.Tensor:
    p = nn.Parameter(torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64))
    model = nn.Module()
    model.p = p
    opt = make_optimizer(model, TrainSettings(lr=lr, weight_decay=wd,
                                              decoupled_weight_decay=decoupled))
    for _ in range(steps):
        opt.zero_grad()
        (0.0 * p.sum()).backward()          # a zero gradient: only the decay acts
        opt.step()
    return p.detach()


def test_decoupled_weight_decay_is_the_reference_formula():
    """p -= lr * wd * p per step: p0 (1 - lr wd)^n, by hand."""
    p0 = torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64)
    n, lr, wd = 300, 2e-3, 5e-4
    got = _decay_only(True, n, lr, wd)
    torch.testing.assert_close(got, p0 * (1 - lr * wd) ** n, rtol=1e-12, atol=0)
    # coupled L2 goes through Adam's normalization: the decay gradient wd*p is rescaled
    # to steps of about lr, far more than the decoupled shrink of lr*wd*p
    coupled = _decay_only(False, n, lr, wd)
    assert ((p0 - coupled).abs() > 10 * (p0 - got).abs()).all()
    assert RECIPES["reference"].decoupled_weight_decay
    assert not RECIPES["insitugen"].decoupled_weight_decay


# ---------------------------------------------------------------------------------
# 6. CIFAR normalization
# ---------------------------------------------------------------------------------
def test_cifar_normalization_std_per_recipe():
    x = torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
    x[0, :, 0, 0] = 255
    ref = normalize_cifar(x, RECIPES["reference"].cifar_std)
    assert CIFAR_STD_REFERENCE == (0.2023, 0.1994, 0.2010)
    expect = [(1 - 0.4914) / 0.2023, (1 - 0.4822) / 0.1994, (1 - 0.4465) / 0.2010]
    assert ref[0, :, 0, 0].tolist() == pytest.approx(expect, rel=1e-6)
    ours = normalize_cifar(x)
    assert ours[0, :, 0, 1].tolist() == pytest.approx(
        [-0.4914 / 0.2470, -0.4822 / 0.2435, -0.4465 / 0.2616], rel=1e-6)


# ---------------------------------------------------------------------------------
# 7. quantizer edges
# ---------------------------------------------------------------------------------
def test_quantizer_edges_differ_from_reference_on_purpose():
    # all-zero tensor: the reference's formula divides 0 by max|tanh| = 0
    z = torch.zeros(5)
    assert torch.isnan(dorefa_sym(z, 4)).all()
    q = quantize(z, 4)
    assert torch.isfinite(q).all() and float(q.abs().max()) < 1e-37
    # 1 bit, exact zero: the reference's sign(0) = 0 is a third level; ours is +mean|x|
    x = torch.tensor([0.0, 1.0, -3.0])
    e = 4.0 / 3.0
    assert (torch.sign(x) * x.abs().mean()).tolist() == pytest.approx([0.0, e, -e])
    assert quantize(x, 1).tolist() == pytest.approx([e, e, -e])


# ---------------------------------------------------------------------------------
# 1., 7. export refusals
# ---------------------------------------------------------------------------------
def _one_conv(**kw):
    torch.manual_seed(SEED)
    net = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.Flatten(),
                        nn.Linear(16, 4))
    mlgify(net, 2, 4, 3, 6, 3, **kw)
    return net


def _refusal(net, out) -> str:
    """The one-line message of an export that must fail and write nothing."""
    with pytest.raises(ExportError) as e:
        export_model(net, out)
    assert not out.exists()
    msg = str(e.value)
    assert "\n" not in msg and "layer '0'" in msg
    return msg


def test_export_refuses_float_factor_layer(tmp_path):
    net = _one_conv(w_bit=32, gate="reference")
    assert "w_bit" in _refusal(net, tmp_path / "out")


def test_export_refuses_layer_not_representable_by_codes(tmp_path):
    net = _one_conv()
    export_model(net, tmp_path / "ok")                         # the plain layer exports
    layer = net[0]
    honest = layer.generated_weight
    layer.generated_weight = lambda: honest() + 0.1            # a forward pass the codes lack
    assert "not representable by its codes" in _refusal(net, tmp_path / "out")
    # the all-zero edge is representable (ours clamps the scale): it exports
    zero = _one_conv()
    with torch.no_grad():
        zero[0].basis.zero_()
    index = export_model(zero, tmp_path / "zero")
    assert index["layers"]["0"]["scales"]["sB"] < 1e-37


def test_cmd_memory_reference_recipe(capsys):
    parser = argparse.ArgumentParser()
    memory_command.add_args(parser)
    args = parser.parse_args(["smallcnn", "--in-channels", "1", "--base-in", "2",
                              "--base-out", "44", "--qb", "3", "--qu", "6", "--qv", "3",
                              "--recipe", "reference", "--w-bit", "32"])
    assert memory_command.run(args) == 0
    out = capsys.readouterr().out
    assert "reference gate" in out and "w_bit 32" in out
    # SmallCNN stem 1 -> 32 is not generated: the reference counts it at 32 bits; the
    # float factors of the generated convs at 32 bits too (w_bit >= 16)
    assert "| features.0 | 32x1x3x3 | W 32x1x3x3 @ 32 |" in out
    assert "B 44x2x9 @ 32" in out


# ---------------------------------------------------------------------------------
# CIFAR-10 Python batches (pickled dicts), written here in that exact format
# ---------------------------------------------------------------------------------
def _fake_cifar_py(folder, n=4, seed=SEED):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        d = {b"batch_label": f"batch {i}".encode(),
             b"labels": [int(v) for v in rng.integers(0, 10, n)],
             b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
             b"filenames": [f"img{j}.png".encode() for j in range(n)]}
        with open(folder / name, "wb") as f:   # protocol 2 as the published files, and 5
            pickle.dump(d, f, protocol=2 if i % 2 == 0 else 5)
    return folder


def test_load_cifar10_python_batches(tmp_path):
    _fake_cifar_py(tmp_path / "cifar-10-batches-py")
    xtr, ytr, xte, yte = load_cifar10(tmp_path)
    assert xtr.shape == (20, 3, 32, 32) and xtr.dtype == torch.uint8
    assert xte.shape == (4, 3, 32, 32) and ytr.dtype == torch.int64
    # row-major [N, 3072] = [N, 3, 32, 32]: red plane first, as CIFAR-10 stores it
    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "rb") as f:
        d = pickle.load(f)
    assert xte[1, 2, 31, 31].item() == d[b"data"][1, 3071]
    assert yte.tolist() == d[b"labels"]


def test_load_cifar10_python_refuses_code(tmp_path):
    py = _fake_cifar_py(tmp_path / "cifar-10-batches-py")

    class Evil:
        def __reduce__(self):
            import os
            return (os.getcwd, ())

    with open(py / "test_batch", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": []}, f)
    with pytest.raises(DataError, match="refused global"):
        load_cifar10(py)


def test_train_cifar_on_python_batches_one_step(tmp_path):
    data = _fake_cifar_py(tmp_path / "cifar-10-batches-py")
    parser = argparse.ArgumentParser()
    train_cifar_command.add_args(parser)
    out = tmp_path / "run"
    args = parser.parse_args(["--data", str(data), "--out", str(out), "--teacher-epochs", "1",
                              "--epochs", "1", "--batch-size", "4", "--max-steps-per-epoch", "1",
                              "--projection-steps", "1", "--recipe", "reference",
                              "--threads", "1", "--device", "cpu"])
    s = train_cifar_command.settings_from_args(CifarSettings, args)
    assert s.recipe == "reference" and s.projection is None and s.w_bit == 8
    assert train_cifar_command.run(args) == 0
    result = json.loads((out / "cifar.json").read_text())
    assert result["recipe"] == "reference" and result["gate"] == "reference"
    teacher, info = load_checkpoint(out / "teacher.pt")
    assert info["model"]["weight_bits"] == 15 and isinstance(teacher.conv1, QuantConv2d)
    student, info = load_checkpoint(out / "student.pt")
    assert info["mlg"]["w_bit"] == 8 and isinstance(student.conv1, MLGConv2d)
    assert student.linear.bits == 8


def test_digits_reference_recipe_short(tmp_path):
    from golden.train import reproduce_digits
    s = DigitsSettings(recipe="reference", teacher_epochs=1, student_epochs=1,
                       projection_steps=3, threads=1)
    r = reproduce_digits(s, tmp_path, log=None)
    assert r["settings"]["recipe"] == "reference"
    teacher, info = load_checkpoint(tmp_path / "teacher.pt")
    assert info["model"]["weight_bits"] == 15 and teacher.features[0].bits == 15
    student, info = load_checkpoint(tmp_path / "student.pt")
    assert info["mlg"]["gate"] == "reference" and student.features[0].bits == 8


# ---------------------------------------------------------------------------------
# digits-hard: the generated offline task
# ---------------------------------------------------------------------------------
def test_hard_digits_data_is_fixed_and_harder():
    from golden.datasets import digits_data, digits_set, hard_digits_data
    xtr, ytr, xte, yte = hard_digits_data(size=12, train_copies=2, test_copies=1)
    dtr, dytr, dte, dyte = digits_data(0)
    assert xtr.shape == (2 * len(dtr), 1, 12, 12) and xte.shape == (len(dte), 1, 12, 12)
    assert torch.equal(ytr, dytr.repeat(2)) and torch.equal(yte, dyte)   # test from test split
    assert float(xtr.min()) >= 0.0 and float(xtr.max()) <= 1.0
    again = hard_digits_data(size=12, train_copies=2, test_copies=1)
    assert all(torch.equal(a, b) for a, b in zip((xtr, xte), again[::2], strict=True))
    # not the plain upscale: the warp, noise and distractor move most pixels
    plain = F.interpolate(dte, size=(12, 12), mode="bilinear", align_corners=False)
    assert float((xte - plain).abs().mean()) > 0.1
    # its own fixed seed: the training seed does not change the images
    assert torch.equal(digits_set("digits-hard", 5, 12)[2], digits_set("digits-hard", 0, 12)[2])
    with pytest.raises(DataError, match="size = 4"):
        hard_digits_data(size=4)
    with pytest.raises(DataError, match="dataset 'mnist'"):
        digits_set("mnist")
