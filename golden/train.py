"""The MLG training recipe (Gu et al., ICCV 2021, and its reference code), a CPU-sized
reproduction on scikit-learn's 8x8 digits, and a ResNet-18 / CIFAR-10 script for data on disk.

1. teacher: the ordinary network, trained normally;
2. student = :func:`mlgify` of a copy of the teacher (so BatchNorm statistics, biases and
   every non-generated layer come from the teacher), then projection of B, U, V onto
   the teacher's weights: :func:`project_gradient` (minimize the summed MSE between the
   student's quantized generated weights and the teacher's, RAdam lr 2e-2, 3000 steps)
   or :func:`project_svd` (truncated SVD: V = top-Bo left singular vectors, then a
   rank-Bi split of each basis filter), or both (``svd+gradient``);
3. knowledge distillation :func:`kd_loss` ``0.9 T^2 KL + 0.1 CE``, T = 3;
4. multi-level orthonormality regularization (:func:`golden.mlg.ortho_loss`),
   weight 0.05;
5. quantization-aware training: the quantizers are on from the first step; RAdam
   lr 2e-3, weight decay 5e-4, cosine schedule.

Nothing here downloads anything: the digits ship inside scikit-learn, CIFAR-10 is read
from a folder the user gives (``--data``); both live in :mod:`golden.datasets`. The
settings are in :mod:`golden.train_settings` (torch-free, for the command line).
"""

from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from insitugen.errors import InsitugenError
from insitugen.files import atomic_write_text

from .datasets import (
    batches,
    digits_data,
    load_cifar10,
    normalize_cifar,
    random_crop_flip,
)
from .memory import memory_report
from .mlg import MLGLayerBase, QuantLinear, mlg_layers, ortho_loss
from .mlgify import mlgify, save_checkpoint
from .models import build_model
from .train_settings import (
    PROJECTIONS,
    CifarSettings,
    DigitsSettings,
    MLGSettings,
    TrainSettings,
)

__all__ = ["approximation_loss", "project_gradient", "project_svd", "project", "kd_loss",
           "train", "accuracy", "make_student", "reproduce_digits", "train_cifar",
           "PROJECTIONS", "TrainSettings", "DigitsSettings", "CifarSettings"]


# ---------------------------------------------------------------------------------
# projection (L2 initialization)
# ---------------------------------------------------------------------------------
def _teacher_pairs(student: nn.Module, teacher: nn.Module):
    """``(name, student layer, teacher weight)`` for every generated layer and the
    quantized classifier; student and teacher must share module names (mlgify of a copy)."""
    teacher_modules = dict(teacher.named_modules())
    pairs = []
    for name, m in student.named_modules():
        if (isinstance(m, MLGLayerBase) and m.generated) or isinstance(m, QuantLinear):
            t = teacher_modules.get(name)
            if t is None or not hasattr(t, "weight"):
                raise InsitugenError(f"teacher has no layer '{name}' with a weight: the student "
                                     f"must be mlgify() of a copy of the teacher")
            w = t.weight.detach()
            shape = m.weight_shape if isinstance(m, MLGLayerBase) else tuple(m.weight.shape)
            if tuple(w.shape) != tuple(shape):
                raise InsitugenError(f"layer '{name}': teacher weight {tuple(w.shape)} does not "
                                     f"match the student's {tuple(shape)}")
            pairs.append((name, m, w))
    return pairs


def _student_weight(m: nn.Module) -> torch.Tensor:
    return m.generated_weight() if isinstance(m, MLGLayerBase) else m.quantized_weight()


def approximation_loss(student: nn.Module, teacher: nn.Module, pairs=None) -> torch.Tensor:
    """Sum over layers of ``mse(student quantized generated weight, teacher weight)``."""
    pairs = pairs if pairs is not None else _teacher_pairs(student, teacher)
    loss = None
    for _, m, w in pairs:
        term = F.mse_loss(_student_weight(m).reshape(-1), w.reshape(-1))
        loss = term if loss is None else loss + term
    return loss if loss is not None else torch.zeros(())


def project_gradient(student: nn.Module, teacher: nn.Module, steps: int = 3000,
                     lr: float = 2e-2, log: Callable[[str], None] | None = None) -> float:
    """Gradient projection: RAdam on the summed weight MSE. Keeps the best parameters
    seen (the quantized loss is not monotone under Adam steps), so it never ends worse
    than it started. Returns the final loss."""
    pairs = _teacher_pairs(student, teacher)
    params = [p for _, m, _ in pairs for p in m.parameters(recurse=False)
              if p.requires_grad and p is not getattr(m, "bias", None)]
    if not params or steps <= 0:
        with torch.no_grad():
            return float(approximation_loss(student, teacher, pairs))
    opt = torch.optim.RAdam(params, lr=lr)
    best, best_state = float("inf"), None
    for i in range(steps + 1):
        loss = approximation_loss(student, teacher, pairs)
        value = loss.item()
        if value < best:
            best, best_state = value, [p.detach().clone() for p in params]
        if log and (i % 500 == 0 or i == steps):
            log(f"[projection] step {i}: weight mse sum {value:.6f}")
        if i == steps:
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        for p, b in zip(params, best_state, strict=True):
            p.copy_(b)
    return best


def _latent(target: torch.Tensor) -> torch.Tensor:
    """Latent value whose quantized value is close to ``target``: the quantizer returns
    about ``tanh(latent)`` (its scale is ``max|tanh|``), so invert tanh (clipped)."""
    return torch.atanh(target.clamp(-0.995, 0.995))


@torch.no_grad()
def project_svd(student: nn.Module, teacher: nn.Module,
                log: Callable[[str], None] | None = None) -> float:
    """Truncated-SVD projection. For each generated layer with teacher weight ``W [p, q*K]``:
    cross level on: ``W ~ (U_r) (S_r Vh_r)`` with ``r = Bo``, V = ``U_r`` (orthonormal
    columns); intra level on: each basis filter ``[q, K] ~ a [q, Bi] b [Bi, K]`` (rank-Bi
    SVD, singular values split evenly). The three factors are then rescaled to equal
    largest magnitudes (their product is unchanged) and stored through ``atanh`` so that
    the quantized values approximate them. The classifier copies the teacher weight.
    Returns the summed weight MSE afterwards."""
    pairs = _teacher_pairs(student, teacher)
    for _name, m, w in pairs:
        if isinstance(m, QuantLinear):
            m.weight.copy_(w)
            continue
        p, q, K = m.out_channels, m.group_in_channels, m.kernel * m.kernel
        W = w.reshape(p, q * K).double()
        factors = {}
        if m.level2:
            u, s, vh = torch.linalg.svd(W, full_matrices=False)
            factors["V"] = u[:, :m.Bo]
            rest = s[:m.Bo, None] * vh[:m.Bo]                    # [Bo, q*K]
        else:
            rest = W
        rest = rest.reshape(m.Bo, q, K)
        if m.level1:
            u, s, vh = torch.linalg.svd(rest, full_matrices=False)   # batched over Bo
            r = m.base_in
            sq = s[:, :r].sqrt()
            factors["U"] = u[:, :, :r] * sq[:, None, :]              # [Bo, q, Bi]
            factors["B"] = sq[:, :, None] * vh[:, :r, :]             # [Bo, Bi, K]
        else:
            factors["B"] = rest                                      # [Bo, q, K]
        # balance: scale every factor to the geometric mean g of their largest magnitudes
        # (the product is unchanged); capped at 0.9 where tanh saturates
        peaks = {k: float(v.abs().max().clamp_min(1e-12)) for k, v in factors.items()}
        g = min(math.prod(peaks.values()) ** (1.0 / len(peaks)), 0.9)
        factors = {k: v * (g / peaks[k]) for k, v in factors.items()}
        m.basis.copy_(_latent(factors["B"]).reshape(m.basis.shape).float())
        if m.level1:
            m.coeff_in.copy_(_latent(factors["U"]).float())
        if m.level2:
            m.coeff_out.copy_(_latent(factors["V"]).float())
    loss = float(approximation_loss(student, teacher, pairs))
    if log:
        log(f"[projection] svd: weight mse sum {loss:.6f}")
    return loss


def project(student: nn.Module, teacher: nn.Module, method: str = "svd+gradient",
            steps: int = 3000, lr: float = 2e-2,
            log: Callable[[str], None] | None = None) -> float:
    """Projection initialization by name: ``svd``, ``gradient``, ``svd+gradient`` or ``none``
    (``svd+gradient``: SVD start refined by gradient steps, which keep the best state, so
    the refinement never ends worse than the SVD)."""
    if method not in PROJECTIONS:
        raise InsitugenError(f"projection '{method}' is unknown: use one of "
                             f"{', '.join(PROJECTIONS)}")
    loss = float("nan")
    if method in ("svd", "svd+gradient"):
        loss = project_svd(student, teacher, log)
    if method in ("gradient", "svd+gradient"):
        loss = project_gradient(student, teacher, steps, lr, log)
    return loss


# ---------------------------------------------------------------------------------
# losses and loops
# ---------------------------------------------------------------------------------
def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
            T: float = 3.0, alpha: float = 0.9) -> torch.Tensor:
    """``alpha T^2 KL(teacher_T || student_T) + (1 - alpha) CE(student, labels)``."""
    kl = F.kl_div(F.log_softmax(student_logits / T, dim=1),
                  F.softmax(teacher_logits / T, dim=1), reduction="batchmean")
    return alpha * T * T * kl + (1 - alpha) * F.cross_entropy(student_logits, labels)


def _optimizer(model: nn.Module, s: TrainSettings) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if s.optimizer == "sgd":
        return torch.optim.SGD(params, lr=s.lr, momentum=0.9, weight_decay=s.weight_decay,
                               nesterov=True)
    if s.optimizer == "radam":
        return torch.optim.RAdam(params, lr=s.lr, weight_decay=s.weight_decay)
    raise InsitugenError(f"optimizer '{s.optimizer}' is unknown: use radam or sgd")


def train(model: nn.Module, batches: Callable[[int], Iterable], settings: TrainSettings,
          teacher: nn.Module | None = None, device: str | torch.device = "cpu",
          evaluate_fn: Callable[[nn.Module], float] | None = None,
          log: Callable[[str], None] | None = None) -> list[dict]:
    """Train ``model`` (teacher or MLG student); ``batches(epoch)`` yields ``(x, y)``.

    With a teacher: KD loss; with MLG layers and ``ortho_weight > 0``: + orthonormality
    term. RAdam (or SGD) with a cosine schedule over ``epochs``. Returns per-epoch logs."""
    opt = _optimizer(model, settings)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, settings.epochs))
    use_ortho = settings.ortho_weight > 0 and bool(mlg_layers(model))
    if teacher is not None:
        teacher.eval()
    history = []
    for epoch in range(settings.epochs):
        model.train()
        total, n, correct = 0.0, 0, 0
        for step, (x, y) in enumerate(batches(epoch)):
            if settings.max_steps_per_epoch and step >= settings.max_steps_per_epoch:
                break
            x, y = x.to(device), y.to(device)
            out = model(x)
            if teacher is not None:
                with torch.no_grad():
                    t_out = teacher(x)
                loss = kd_loss(out, t_out, y, settings.T, settings.alpha)
            else:
                loss = F.cross_entropy(out, y)
            if use_ortho:
                loss = loss + settings.ortho_weight * ortho_loss(model)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(y)
            n += len(y)
            correct += int((out.argmax(1) == y).sum())
        sched.step()
        entry = {"epoch": epoch + 1, "loss": total / max(1, n),
                 "train_acc": 100.0 * correct / max(1, n)}
        if evaluate_fn is not None:
            entry["test_acc"] = evaluate_fn(model)
        history.append(entry)
        if log:
            log(" ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                         for k, v in entry.items()))
    return history


@torch.no_grad()
def accuracy(model: nn.Module, batches: Iterable, device: str | torch.device = "cpu") -> float:
    """Top-1 accuracy in percent (model in eval mode)."""
    model.eval()
    correct = n = 0
    for x, y in batches:
        out = model(x.to(device))
        correct += int((out.argmax(1).cpu() == y).sum())
        n += len(y)
    return 100.0 * correct / max(1, n)


def make_student(teacher: nn.Module, base_in: int, base_out: int, qb: int, qu: int, qv: int,
                 classifier_bits: int | None = None):
    """``(student, report)``: mlgify of a deep copy of the teacher."""
    student = copy.deepcopy(teacher)
    report = mlgify(student, base_in, base_out, qb, qu, qv, classifier_bits)
    return student, report


def _check_student_settings(s: MLGSettings, model: str, num_classes: int,
                            in_channels: int) -> None:
    """Check the MLG settings before minutes of data loading and teacher training."""
    if s.projection not in PROJECTIONS:
        raise InsitugenError(f"projection '{s.projection}' is unknown: use one of "
                             f"{', '.join(PROJECTIONS)}")
    mlgify(build_model(model, num_classes, in_channels), **s.mlg())


# ---------------------------------------------------------------------------------
# digits reproduction (CPU, minutes)
# ---------------------------------------------------------------------------------
def reproduce_digits(s: DigitsSettings | None = None, out_dir: str | Path | None = None,
                     log: Callable[[str], None] | None = print) -> dict:
    """Teacher and MLG student (SmallCNN) on the digits; returns accuracies, memory
    compression and wall time. ``out_dir`` (optional) receives ``teacher.pt``,
    ``student.pt`` (MLG checkpoints) and ``digits.json``."""
    s = s or DigitsSettings()
    _check_student_settings(s, "smallcnn", 10, 1)
    t0 = time.perf_counter()
    torch.set_num_threads(max(1, s.threads))
    torch.manual_seed(s.seed)
    xtr, ytr, xte, yte = digits_data(s.seed)
    gen = torch.Generator().manual_seed(s.seed)

    def augment(xb, g):
        return random_crop_flip(xb, g, pad=1, flip=False)

    def train_batches(epoch):
        return batches(xtr, ytr, s.batch_size, True, gen, augment)

    def test_acc(m):
        return accuracy(m, batches(xte, yte, 512, False))

    teacher = build_model("smallcnn", 10, 1)
    if log:
        log(f"teacher: SmallCNN, {sum(p.numel() for p in teacher.parameters())} parameters, "
            f"{len(xtr)} train / {len(xte)} test images")
    train(teacher, train_batches, TrainSettings(epochs=s.teacher_epochs, lr=s.teacher_lr,
                                                ortho_weight=0.0), log=None)
    teacher_acc = test_acc(teacher)
    if log:
        log(f"teacher accuracy {teacher_acc:.2f}%")

    student, report = make_student(teacher, **s.mlg())
    mem = memory_report(student, report.settings(), "smallcnn")
    proj = project(student, teacher, s.projection, s.projection_steps, log=log)
    projected_acc = test_acc(student)
    if log:
        log(f"student after projection: accuracy {projected_acc:.2f}%")
    train(student, train_batches, TrainSettings(epochs=s.student_epochs, lr=s.student_lr,
                                                ortho_weight=s.ortho_weight),
          teacher=teacher if s.kd else None, log=None)
    student_acc = test_acc(student)
    wall = time.perf_counter() - t0
    result = {
        "teacher_accuracy": teacher_acc, "student_accuracy": student_acc,
        "student_accuracy_after_projection": projected_acc,
        "accuracy_gap_pp": teacher_acc - student_acc,
        "projection_weight_mse": proj,
        "memory_ratio_fp32": mem.memory_ratio, "compression_fp32": 1 / mem.memory_ratio,
        "memory_ratio_int8": mem.memory_ratio_int8, "compression_int8": 1 / mem.memory_ratio_int8,
        "param_ratio": mem.param_ratio, "bytes_fp32": mem.bits_fp32 / 8,
        "bytes_stored": mem.bits_stored / 8, "wall_s": wall,
        "settings": {k: getattr(s, k) for k in s.__dataclass_fields__},
    }
    if log:
        log(f"student accuracy {student_acc:.2f}% (teacher {teacher_acc:.2f}%, gap "
            f"{teacher_acc - student_acc:.2f} pp); memory {mem.bits_stored / 8:,.0f} B vs FP32 "
            f"{mem.bits_fp32 / 8:,.0f} B = {1 / mem.memory_ratio:.1f}x smaller "
            f"({1 / mem.memory_ratio_int8:.1f}x vs 8-bit); {wall:.1f} s")
    if out_dir is not None:
        out_dir = Path(out_dir)
        save_checkpoint(out_dir / "teacher.pt", teacher, "smallcnn", 10, 1, None)
        save_checkpoint(out_dir / "student.pt", student, "smallcnn", 10, 1, report.settings(),
                        {"accuracy": student_acc})
        atomic_write_text(out_dir / "digits.json", json.dumps(result, indent=2))
    return result


# ---------------------------------------------------------------------------------
# CIFAR-10 (data on disk)
# ---------------------------------------------------------------------------------
def _cifar_teacher(s: CifarSettings, teacher: str | Path | None, train_batches, out: Path,
                   device: str, log: Callable[[str], None]) -> nn.Module:
    """The teacher: a plain ResNet-18 checkpoint when given, else one trained here (SGD,
    lr 0.1) and saved as ``out/teacher.pt``."""
    if teacher is not None:
        from .mlgify import load_checkpoint
        model, info = load_checkpoint(teacher)
        if info["mlg"] is not None or info["model"]["name"] != "resnet18":
            raise InsitugenError(f"--teacher '{teacher}' must be a plain resnet18 checkpoint")
        return model.to(device)
    model = build_model("resnet18", 10, 3).to(device)
    train(model, train_batches, TrainSettings(epochs=s.teacher_epochs, lr=0.1, optimizer="sgd",
                                              ortho_weight=0.0,
                                              max_steps_per_epoch=s.max_steps_per_epoch),
          device=device, log=log)
    save_checkpoint(out / "teacher.pt", model, "resnet18", 10, 3, None)
    return model


def train_cifar(data: str | Path, out: str | Path, s: CifarSettings | None = None, *,
                teacher: str | Path | None = None,
                log: Callable[[str], None] = print) -> dict:
    """Teacher (trained or loaded from ``teacher``) -> MLG student with projection, KD,
    orthonormality regularization and QAT, on CIFAR-10 read from ``data``. Writes
    ``out/student.pt`` (and ``teacher.pt`` when trained here) and ``out/cifar.json``;
    returns the figures of ``cifar.json``."""
    s = s or CifarSettings()
    _check_student_settings(s, "resnet18", 10, 3)
    torch.set_num_threads(max(1, s.threads))
    torch.manual_seed(s.seed)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if s.device == "auto" \
        else s.device
    xtr, ytr, xte, yte = load_cifar10(data)
    out = Path(out)
    gen = torch.Generator().manual_seed(s.seed)

    def train_batches(epoch):
        for xb, yb in batches(xtr, ytr, s.batch_size, True, gen):
            yield random_crop_flip(normalize_cifar(xb), gen, pad=4, flip=True), yb

    def test_acc(m):
        return accuracy(m, ((normalize_cifar(xb), yb) for xb, yb in
                            batches(xte, yte, 512, False)), device)

    teacher_model = _cifar_teacher(s, teacher, train_batches, out, device, log)
    teacher_acc = test_acc(teacher_model)
    log(f"teacher accuracy {teacher_acc:.2f}%")
    student, report = make_student(teacher_model, **s.mlg())
    mem = memory_report(student, report.settings(), "resnet18")
    project(student, teacher_model, s.projection, s.projection_steps, log=log)
    train(student, train_batches, TrainSettings(epochs=s.epochs, lr=s.lr,
                                                ortho_weight=s.ortho_weight,
                                                max_steps_per_epoch=s.max_steps_per_epoch),
          teacher=teacher_model if s.kd else None, device=device,
          evaluate_fn=test_acc, log=log)
    student_acc = test_acc(student)
    save_checkpoint(out / "student.pt", student.cpu(), "resnet18", 10, 3, report.settings(),
                    {"accuracy": student_acc})
    result = {"teacher_accuracy": teacher_acc, "student_accuracy": student_acc,
              "memory_ratio_fp32": mem.memory_ratio, "param_ratio": mem.param_ratio,
              **report.settings()}
    atomic_write_text(out / "cifar.json", json.dumps(result, indent=2))
    log(f"student accuracy {student_acc:.2f}% (teacher {teacher_acc:.2f}%), memory ratio "
        f"{mem.memory_ratio:.4f}")
    return result
