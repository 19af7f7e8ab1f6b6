# SPDX-License-Identifier: Apache-2.0
"""Training recipe: projection (SVD and gradient), KD loss, the digits reproduction
(shortened; the full one is ``slow``) and the CIFAR-10 script on synthetic batches."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from flows.commands import train_cifar as train_cifar_command
from flows.commands import train_digits as train_digits_command
from golden.datasets import DataError, digits_data, load_cifar10, random_crop_flip
from golden.memory import model_memory
from golden.mlgify import load_checkpoint
from golden.models import build_model
from golden.train import (
    DigitsSettings,
    accuracy,
    approximation_loss,
    kd_loss,
    make_student,
    project,
    project_gradient,
    project_svd,
    reproduce_digits,
    train_digits_teacher,
)
from insitugen.errors import InsitugenError

SEED = 5


def test_kd_loss_formula():
    g = torch.Generator().manual_seed(SEED)
    s, t = torch.randn(6, 10, generator=g), torch.randn(6, 10, generator=g)
    y = torch.randint(0, 10, (6,), generator=g)
    T = 3.0
    p_t = F.softmax(t / T, 1)
    kl = (p_t * (p_t.log() - F.log_softmax(s / T, 1))).sum(1).mean()
    expect = 0.9 * T * T * kl + 0.1 * F.cross_entropy(s, y)
    assert kd_loss(s, t, y).item() == pytest.approx(expect.item(), rel=1e-5)


def _teacher():
    torch.manual_seed(SEED)
    return build_model("smallcnn")


def _low_rank_teacher():
    """SmallCNN whose convs after the stem are exactly MLG-representable with (Bi, Bo) =
    (2, 4) and a basis shared by the basis filters (so the SVD route can recover it)."""
    teacher = _teacher()
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for m in teacher.modules():
            if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1:
                p, q = m.out_channels, m.in_channels
                v = torch.randn(p, 4, generator=g) * 0.3
                u = torch.randn(4, q, 2, generator=g) * 0.3
                b = torch.randn(1, 2, 9, generator=g) * 0.3
                m.weight.copy_((v @ (u @ b).reshape(4, -1)).reshape(p, q, 3, 3))
    return teacher


LOW_RANK_LAYERS = ("features.3", "features.6", "features.9")


def _relative_errors(student, teacher):
    s, t = dict(student.named_modules()), dict(teacher.named_modules())
    out = {}
    for name in LOW_RANK_LAYERS:
        w = t[name].weight.detach()
        out[name] = (F.mse_loss(s[name].generated_weight().detach(), w) / w.square().mean()).item()
    return out


def test_svd_projection_recovers_a_low_rank_teacher():
    teacher = _low_rank_teacher()
    student, _ = make_student(teacher, 2, 4, 12, 12, 12)     # fine quantization
    project_svd(student, teacher)
    errs = _relative_errors(student, teacher)
    assert max(errs.values()) < 1e-2, errs
    student3, _ = make_student(teacher, 2, 4, 4, 6, 4)      # coarse: still close
    project_svd(student3, teacher)
    errs = _relative_errors(student3, teacher)
    assert max(errs.values()) < 0.06, errs


def test_svd_plus_gradient_never_worse_than_svd():
    teacher = _low_rank_teacher()
    a, _ = make_student(teacher, 2, 4, 3, 6, 3)
    b, _ = make_student(teacher, 2, 4, 3, 6, 3)
    svd = project(a, teacher, "svd")
    both = project(b, teacher, "svd+gradient", steps=10)
    assert both <= svd
    assert both == pytest.approx(approximation_loss(b, teacher).item())


def test_gradient_projection_from_random_init():
    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(8, 16, 3, bias=False)
            self.head = torch.nn.Linear(16, 4)

    teacher = Tiny()
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():      # an exactly representable target, within tanh's range
        v = torch.randn(16, 4, generator=g) * 0.3
        w1 = (torch.randn(4, 8, 2, generator=g) * 0.3) @ (torch.randn(4, 2, 9, generator=g) * 0.3)
        teacher.conv.weight.copy_((v @ w1.reshape(4, -1)).reshape(16, 8, 3, 3))
    student, _ = make_student(teacher, 2, 4, 8, 8, 8)
    with torch.no_grad():
        before = approximation_loss(student, teacher).item()
    after = project_gradient(student, teacher, steps=150)
    assert after < 0.3 * before, (before, after)


def test_gradient_projection_keeps_batchnorm_and_bias():
    teacher = _teacher()
    student, _ = make_student(teacher, 2, 16, 3, 6, 3)
    bn_before = student.features[1].running_mean.clone()
    bias_before = student.classifier.bias.detach().clone()
    project_gradient(student, teacher, steps=5)
    assert torch.equal(student.features[1].running_mean, bn_before)
    assert torch.equal(student.classifier.bias, bias_before)


def test_project_rejects_unknown_method():
    teacher = _teacher()
    student, _ = make_student(teacher, 2, 16, 3, 6, 3)
    with pytest.raises(InsitugenError, match="projection 'pca'"):
        project(student, teacher, "pca")


def test_random_crop_flip_shapes_and_content():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    y = random_crop_flip(x, torch.Generator().manual_seed(0), pad=0, flip=False)
    assert torch.equal(x, y)
    z = random_crop_flip(x, torch.Generator().manual_seed(0), pad=2, flip=True)
    assert z.shape == x.shape


def test_digits_data_split():
    xtr, ytr, xte, yte = digits_data(0)
    assert xtr.shape[1:] == (1, 8, 8) and len(xtr) + len(xte) == 1797
    assert float(xtr.max()) <= 1.0 and set(yte.tolist()) == set(range(10))


def test_digits_reproduction_short(tmp_path):
    s = DigitsSettings(teacher_epochs=4, student_epochs=2, projection_steps=20, threads=1)
    r = reproduce_digits(s, tmp_path, log=None)
    mem = model_memory("smallcnn", 2, 44, 3, 6, 3, in_channels=1)
    assert r["compression_fp32"] == pytest.approx(1 / mem.memory_ratio)
    assert r["compression_fp32"] >= 10
    for k in ("teacher_accuracy", "student_accuracy", "student_accuracy_after_projection"):
        assert 0.0 <= r[k] <= 100.0
    assert r["teacher_accuracy"] > 30.0             # 4 epochs are far better than chance
    saved = json.loads((tmp_path / "digits.json").read_text())
    assert saved["student_accuracy"] == r["student_accuracy"]
    student, info = load_checkpoint(tmp_path / "student.pt")
    assert info["mlg"]["base_out"] == 44
    _, _, xte, yte = digits_data(0)
    assert accuracy(student, [(xte, yte)]) == pytest.approx(r["student_accuracy"])


def test_cmd_train_digits_arguments(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    train_digits_command.add_args(parser)
    args = parser.parse_args(["--teacher-epochs", "1", "--student-epochs", "1",
                              "--projection", "svd", "--threads", "1", "--out", str(tmp_path)])
    assert (args.base_in, args.base_out, args.qb, args.qu, args.qv) == (2, 44, 3, 6, 3)
    assert train_digits_command.run(args) == 0
    assert "student accuracy" in capsys.readouterr().out
    assert (tmp_path / "student.pt").is_file()


def test_shared_digits_teacher_gives_the_same_student(tmp_path):
    """One teacher serves several MLG settings (benchmarks/bench_fidelity.py): the student
    trained from it equals the one of a run that trains its own teacher, also after the
    teacher served another setting (the random states are restored, the teacher unchanged).
    The reference recipe projects from the random init, so a wrong random state shows."""
    def settings(**mlg):
        return DigitsSettings(teacher_epochs=1, student_epochs=1, projection_steps=3,
                              threads=1, seed=SEED, recipe="reference", **mlg)
    own = reproduce_digits(settings(qb=8, qu=8, qv=8), tmp_path / "own", log=None)
    teacher = train_digits_teacher(settings(), log=None)
    reproduce_digits(settings(), None, log=None, teacher=teacher)          # 3-6-3 first
    shared = reproduce_digits(settings(qb=8, qu=8, qv=8), tmp_path / "shared", log=None,
                              teacher=teacher)
    for k in ("teacher_accuracy", "student_accuracy", "student_accuracy_after_projection"):
        assert shared[k] == own[k], k
    a = torch.load(tmp_path / "own" / "student.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "shared" / "student.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(InsitugenError, match="trained with seed = 5, this run has 6"):
        reproduce_digits(DigitsSettings(teacher_epochs=1, seed=6, recipe="reference"),
                         log=None, teacher=teacher)


def test_digits_reproduction_checks_settings_first():
    with pytest.raises(InsitugenError, match="qb = 40"):
        reproduce_digits(DigitsSettings(qb=40), log=None)


@pytest.mark.slow
def test_digits_reproduction_full():
    """The issue's target: student within 2 pp of the teacher at >= 10x compression."""
    r = reproduce_digits(DigitsSettings(), log=print)
    assert r["teacher_accuracy"] - r["student_accuracy"] <= 2.0
    assert r["compression_fp32"] >= 10.0


# ---------------------------------------------------------------------------------
# CIFAR-10 script on synthetic batches (binary format)
# ---------------------------------------------------------------------------------
def _fake_cifar(folder, n=8, seed=SEED):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        rec = np.zeros((n, 1 + 3072), dtype=np.uint8)
        rec[:, 0] = rng.integers(0, 10, n)
        rec[:, 1:] = rng.integers(0, 256, (n, 3072))
        rec.tofile(folder / name)
    return folder


def test_load_cifar10_binary(tmp_path):
    _fake_cifar(tmp_path / "cifar-10-batches-bin", n=3)
    xtr, ytr, xte, yte = load_cifar10(tmp_path)          # the parent folder works too
    assert xtr.shape == (15, 3, 32, 32) and xtr.dtype == torch.uint8
    assert xte.shape == (3, 3, 32, 32) and int(ytr.max()) <= 9


def test_load_cifar10_errors(tmp_path):
    with pytest.raises(DataError, match="no CIFAR-10 batches"):
        load_cifar10(tmp_path)
    py = tmp_path / "cifar-10-batches-py"
    py.mkdir()
    (py / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="data_batch_1 "):
        load_cifar10(tmp_path)
    for i in range(1, 6):
        (py / f"data_batch_{i}").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="not a CIFAR-10 Python batch"):
        load_cifar10(tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "test_batch.bin").write_bytes(b"\x00" * 100)
    with pytest.raises(DataError, match="data_batch_1.bin"):
        load_cifar10(bad)


def test_train_cifar_script_on_synthetic_batches(tmp_path, capsys):
    data = _fake_cifar(tmp_path / "cifar-10-batches-bin")
    parser = argparse.ArgumentParser()
    train_cifar_command.add_args(parser)
    out = tmp_path / "run"
    args = parser.parse_args(["--data", str(data), "--out", str(out), "--teacher-epochs", "1",
                              "--epochs", "1", "--batch-size", "4", "--max-steps-per-epoch", "2",
                              "--projection", "svd+gradient", "--projection-steps", "2",
                              "--threads", "1", "--device", "cpu"])
    assert train_cifar_command.run(args) == 0
    result = json.loads((out / "cifar.json").read_text())
    assert round(result["memory_ratio_fp32"], 4) == 0.0080
    student, info = load_checkpoint(out / "student.pt")
    assert info["model"]["name"] == "resnet18" and info["mlg"]["qu"] == 6
    # a given teacher checkpoint is used instead of training one
    args2 = parser.parse_args(["--data", str(data), "--out", str(tmp_path / "run2"),
                               "--teacher", str(out / "teacher.pt"), "--epochs", "1",
                               "--batch-size", "4", "--max-steps-per-epoch", "1",
                               "--projection", "svd", "--threads", "1", "--device", "cpu"])
    assert train_cifar_command.run(args2) == 0
    assert "student accuracy" in capsys.readouterr().out
