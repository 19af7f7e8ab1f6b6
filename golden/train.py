# SPDX-License-Identifier: Apache-2.0
"""The MLG training recipe (Gu et al., ICCV 2021, and its reference code), a CPU-sized
reproduction on scikit-learn's 8x8 digits, and a ResNet-18 / CIFAR-10 script for data on disk.

1. teacher: the ordinary network (``reference`` recipe: its weights through the 15-bit
   DoReFa quantizer, :func:`golden.mlg.quantize_model`), trained normally;
2. student = :func:`mlgify` of a copy of the teacher (so BatchNorm statistics, biases and
   every non-generated layer come from the teacher), then projection of B, U, V onto
   the teacher's weights *as its forward pass sees them* (for the 15-bit teacher:
   dorefa-15 of ``tanh(w)``): :func:`project_gradient` (minimize the summed MSE between
   the student's forward weights and the teacher's over every conv / linear, RAdam lr
   2e-2; keeps the best iterate, or the last under ``reference``) or :func:`project_svd`
   (truncated SVD, see its docstring for how it differs from the reference's), or both
   (``svd+gradient``);
3. knowledge distillation :func:`kd_loss` ``0.9 T^2 KL + 0.1 CE``, T = 3;
4. multi-level orthonormality regularization (:func:`golden.mlg.ortho_loss`),
   weight 0.05;
5. quantization-aware training: the quantizers are on from the first step; RAdam
   lr 2e-3, weight decay 5e-4 (decoupled, ``p -= lr*wd*p``, under ``reference``; coupled
   L2 under ``insitugen``), cosine schedule.

The two recipes (:data:`~golden.train_settings.RECIPES`) differ only where
:class:`~golden.train_settings.Recipe` says.

Nothing here downloads anything: the digits ship inside scikit-learn, CIFAR-10 is read
from a folder the user gives (``--data``); both live in :mod:`golden.datasets`. The
settings are in :mod:`golden.train_settings` (torch-free, for the command line).
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from insitugen.errors import InsitugenError
from insitugen.files import atomic_write_text

from .datasets import (
    batches,
    digits_set,
    load_cifar10,
    normalize_cifar,
    random_crop_flip,
)
from .memory import memory_report
from .mlg import (
    MLGLayerBase,
    QuantWeight,
    forward_weight,
    mlg_layers,
    ortho_loss,
    quantize_model,
)
from .mlgify import mlgify, save_checkpoint
from .models import build_model
from .train_settings import (
    PROJECTIONS,
    CifarSettings,
    DigitsSettings,
    MLGSettings,
    TrainSettings,
    recipe,
)

__all__ = ["approximation_loss", "project_gradient", "project_svd", "project", "kd_loss",
           "make_optimizer", "train", "accuracy", "make_teacher", "make_student",
           "DigitsTeacher", "DIGITS_TEACHER_FIELDS", "train_digits_teacher", "reproduce_digits",
           "train_cifar", "PROJECTIONS", "TrainSettings", "DigitsSettings", "CifarSettings"]


# ---------------------------------------------------------------------------------
# projection (L2 initialization)
# ---------------------------------------------------------------------------------
@torch.no_grad()
def _teacher_pairs(student: nn.Module, teacher: nn.Module):
    """``(name, student layer, teacher forward weight)`` for every generated layer and
    every quantized layer that is not generated (the classifier included): the layers the
    reference's approximation loss sums over. The target is the weight the teacher's
    forward pass uses (quantized for a quantized teacher). Student and teacher must share
    module names (mlgify of a copy)."""
    teacher_modules = dict(teacher.named_modules())
    pairs = []
    for name, m in student.named_modules():
        if (isinstance(m, MLGLayerBase) and m.generated) or isinstance(m, QuantWeight):
            t = teacher_modules.get(name)
            if t is None or not hasattr(t, "weight"):
                raise InsitugenError(f"teacher has no layer '{name}' with a weight: the student "
                                     f"must be mlgify() of a copy of the teacher")
            w = forward_weight(t).detach().clone()
            shape = m.weight_shape if isinstance(m, MLGLayerBase) else tuple(m.weight.shape)
            if tuple(w.shape) != tuple(shape):
                raise InsitugenError(f"layer '{name}': teacher weight {tuple(w.shape)} does not "
                                     f"match the student's {tuple(shape)}")
            pairs.append((name, m, w))
    return pairs


def approximation_loss(student: nn.Module, teacher: nn.Module, pairs=None) -> torch.Tensor:
    """Sum over layers of ``mse(student forward weight, teacher forward weight)``."""
    pairs = pairs if pairs is not None else _teacher_pairs(student, teacher)
    loss = None
    for _, m, w in pairs:
        term = F.mse_loss(forward_weight(m).reshape(-1), w.reshape(-1))
        loss = term if loss is None else loss + term
    return loss if loss is not None else torch.zeros(())


def project_gradient(student: nn.Module, teacher: nn.Module, steps: int = 3000,
                     lr: float = 2e-2, log: Callable[[str], None] | None = None,
                     keep: str = "best") -> float:
    """Gradient projection: ``steps`` RAdam steps on the summed weight MSE.
    ``keep="best"`` (insitugen) keeps the best parameters seen (the quantized loss is
    not monotone under Adam steps), so it never ends worse than it started;
    ``keep="last"`` (the reference) keeps the last iterate. Returns the loss of the
    parameters kept."""
    if keep not in ("best", "last"):
        raise InsitugenError(f"keep = {keep!r} is unknown: use best or last")
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
        if keep == "last":
            best, best_state = value, None
        elif value < best:
            best, best_state = value, [p.detach().clone() for p in params]
        if log and (i % 500 == 0 or i == steps):
            log(f"[projection] step {i}: weight mse sum {value:.6f}")
        if i == steps:
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if best_state is not None:
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
    the quantized values approximate them. Layers that are not generated copy the
    teacher's weight. Returns the summed weight MSE afterwards.

    The reference's ``svd`` differs: it factors the teacher's raw weight, keeps the
    singular values in the second factor (V orthonormal, U unscaled) and copies the raw
    factors into the latent tensors, which the quantizer then passes through ``tanh``
    and rescales by ``max|tanh|``; that is not a projection of the quantized weight, and
    its result is refined by nothing. Ours balances the factors and inverts ``tanh``."""
    pairs = _teacher_pairs(student, teacher)
    for _name, m, w in pairs:
        if isinstance(m, QuantWeight):
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
            log: Callable[[str], None] | None = None, keep: str = "best") -> float:
    """Projection initialization by name: ``svd``, ``gradient``, ``svd+gradient`` or ``none``
    (``svd+gradient``: SVD start refined by gradient steps; with ``keep="best"`` the
    refinement never ends worse than the SVD). ``gradient`` is the reference's ``train``."""
    if method not in PROJECTIONS:
        raise InsitugenError(f"projection '{method}' is unknown: use one of "
                             f"{', '.join(PROJECTIONS)}")
    loss = float("nan")
    if method in ("svd", "svd+gradient"):
        loss = project_svd(student, teacher, log)
    if method in ("gradient", "svd+gradient"):
        loss = project_gradient(student, teacher, steps, lr, log, keep)
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


def make_optimizer(model: nn.Module, s: TrainSettings) -> torch.optim.Optimizer:
    """SGD (momentum 0.9, Nesterov) or RAdam, weight decay coupled (L2 in the gradient)
    or, for RAdam with ``decoupled_weight_decay``, decoupled: ``p -= lr * wd * p`` before
    the step, as the reference's RAdam."""
    params = [p for p in model.parameters() if p.requires_grad]
    if s.optimizer == "sgd":
        return torch.optim.SGD(params, lr=s.lr, momentum=0.9, weight_decay=s.weight_decay,
                               nesterov=True)
    if s.optimizer == "radam":
        return torch.optim.RAdam(params, lr=s.lr, weight_decay=s.weight_decay,
                                 decoupled_weight_decay=s.decoupled_weight_decay)
    raise InsitugenError(f"optimizer '{s.optimizer}' is unknown: use radam or sgd")


def train(model: nn.Module, batches: Callable[[int], Iterable], settings: TrainSettings,
          teacher: nn.Module | None = None, device: str | torch.device = "cpu",
          evaluate_fn: Callable[[nn.Module], float] | None = None,
          log: Callable[[str], None] | None = None) -> list[dict]:
    """Train ``model`` (teacher or MLG student); ``batches(epoch)`` yields ``(x, y)``.

    With a teacher: KD loss; with MLG layers and ``ortho_weight > 0``: + orthonormality
    term. RAdam (or SGD) with a cosine schedule over ``epochs``. Returns per-epoch logs."""
    opt = make_optimizer(model, settings)
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
                 classifier_bits: int | None = None, *, w_bit: int = 8,
                 gate: str = "insitugen"):
    """``(student, report)``: mlgify of a deep copy of the teacher."""
    student = copy.deepcopy(teacher)
    report = mlgify(student, base_in, base_out, qb, qu, qv, classifier_bits, w_bit=w_bit,
                    gate=gate)
    return student, report


def make_teacher(model_name: str, num_classes: int, in_channels: int, recipe_name: str):
    """``(teacher, weight bits)``: a fresh shipped model; under a recipe with a quantized
    teacher (``reference``: 15 bits) every conv / linear weight goes through the quantizer."""
    bits = recipe(recipe_name).teacher_bits
    model = build_model(model_name, num_classes, in_channels)
    if bits < 32:
        quantize_model(model, bits)
    return model, bits


def _check_student_settings(s: MLGSettings, model: str, num_classes: int,
                            in_channels: int) -> None:
    """Check the MLG settings before minutes of data loading and teacher training."""
    recipe(s.recipe)
    if s.projection is not None and s.projection not in PROJECTIONS:
        raise InsitugenError(f"projection '{s.projection}' is unknown: use one of "
                             f"{', '.join(PROJECTIONS)}")
    mlgify(build_model(model, num_classes, in_channels), **s.mlg())


def _project_student(s: MLGSettings, student: nn.Module, teacher: nn.Module,
                     log: Callable[[str], None] | None) -> float:
    method = s.projection_method()
    if log and method == "none" and s.projection not in (None, "none"):
        log(f"[projection] skipped: the {s.recipe} recipe projects only with KD")
    return project(student, teacher, method, s.projection_steps, log=log,
                   keep=recipe(s.recipe).projection_keep)


# ---------------------------------------------------------------------------------
# digits reproduction (CPU, minutes)
# ---------------------------------------------------------------------------------
#: The settings a trained digits teacher depends on: a teacher is shared only between
#: runs that agree on all of them (:func:`train_digits_teacher`).
DIGITS_TEACHER_FIELDS = ("recipe", "seed", "dataset", "image_size", "teacher_epochs",
                         "teacher_lr", "batch_size")


@dataclass
class DigitsTeacher:
    """A trained digits teacher and the random states right after its training, so that
    :func:`reproduce_digits` given it trains the same student as when it trains the
    teacher itself (one teacher serves several MLG settings)."""

    model: nn.Module
    bits: int
    accuracy: float
    wall_s: float
    settings: dict
    gen_state: torch.Tensor
    rng_state: torch.Tensor


def _digits_data(s: DigitsSettings):
    """The data, the batch generator and the loaders of one digits run."""
    xtr, ytr, xte, yte = digits_set(s.dataset, s.seed, s.image_size)
    gen = torch.Generator().manual_seed(s.seed)

    def augment(xb, g):
        return random_crop_flip(xb, g, pad=1, flip=False)

    def train_batches(epoch):
        return batches(xtr, ytr, s.batch_size, True, gen, augment)

    def test_acc(m):
        return accuracy(m, batches(xte, yte, 512, False))
    return len(xtr), len(xte), gen, train_batches, test_acc


def train_digits_teacher(s: DigitsSettings | None = None,
                         log: Callable[[str], None] | None = print) -> DigitsTeacher:
    """Train the SmallCNN teacher of :func:`reproduce_digits` (the same seeds, data and
    steps) and return it with the random states the student's training continues from."""
    s = s or DigitsSettings()
    _check_student_settings(s, "smallcnn", 10, 1)
    t0 = time.perf_counter()
    torch.set_num_threads(max(1, s.threads))
    torch.manual_seed(s.seed)
    n_train, n_test, gen, train_batches, test_acc = _digits_data(s)
    r = recipe(s.recipe)
    teacher, teacher_bits = make_teacher("smallcnn", 10, 1, s.recipe)
    if log:
        log(f"teacher: SmallCNN, {sum(p.numel() for p in teacher.parameters())} parameters, "
            f"{teacher_bits}-bit weights, {n_train} train / {n_test} test images, "
            f"{s.recipe} recipe")
    teacher_lr = s.teacher_lr if s.teacher_lr is not None else r.digits_teacher_lr
    train(teacher, train_batches, TrainSettings(epochs=s.teacher_epochs, lr=teacher_lr,
                                                ortho_weight=0.0,
                                                decoupled_weight_decay=r.decoupled_weight_decay),
          log=None)
    teacher_acc = test_acc(teacher)
    if log:
        log(f"teacher accuracy {teacher_acc:.2f}%")
    return DigitsTeacher(teacher, teacher_bits, teacher_acc, time.perf_counter() - t0,
                         {k: getattr(s, k) for k in DIGITS_TEACHER_FIELDS},
                         gen.get_state(), torch.get_rng_state())


def reproduce_digits(s: DigitsSettings | None = None, out_dir: str | Path | None = None,
                     log: Callable[[str], None] | None = print,
                     teacher: DigitsTeacher | None = None) -> dict:
    """Teacher and MLG student (SmallCNN) on the digits (or ``digits-hard``, see
    :func:`golden.datasets.hard_digits_data`); returns accuracies, memory
    compression and wall time. ``out_dir`` (optional) receives ``teacher.pt``,
    ``student.pt`` (MLG checkpoints) and ``digits.json``. ``teacher`` (from
    :func:`train_digits_teacher` with the same teacher settings) is used instead of
    training one; the student is then the same as without it (a deep copy is trained,
    the teacher is not changed). ``wall_s`` is this call's wall time (with the teacher's
    training only when it trains the teacher), ``teacher_wall_s`` the teacher's."""
    s = s or DigitsSettings()
    _check_student_settings(s, "smallcnn", 10, 1)
    t0 = time.perf_counter()
    if teacher is None:
        teacher = train_digits_teacher(s, log)
    else:
        wanted = {k: getattr(s, k) for k in DIGITS_TEACHER_FIELDS}
        if teacher.settings != wanted:
            diff = next(k for k in DIGITS_TEACHER_FIELDS if teacher.settings[k] != wanted[k])
            raise InsitugenError(f"the given teacher was trained with {diff} = "
                                 f"{teacher.settings[diff]!r}, this run has {wanted[diff]!r}: "
                                 f"train it with the run's settings")
    torch.set_num_threads(max(1, s.threads))
    _, _, gen, train_batches, test_acc = _digits_data(s)
    gen.set_state(teacher.gen_state)
    torch.set_rng_state(teacher.rng_state)
    r = recipe(s.recipe)
    teacher_acc, teacher_bits, teacher_wall = teacher.accuracy, teacher.bits, teacher.wall_s
    teacher = teacher.model

    student, report = make_student(teacher, **s.mlg())
    mem = memory_report(student, report.settings(), "smallcnn")
    proj = _project_student(s, student, teacher, log)
    projected_acc = test_acc(student)
    if log:
        log(f"student after projection: accuracy {projected_acc:.2f}%")
    train(student, train_batches, TrainSettings(epochs=s.student_epochs, lr=s.student_lr,
                                                ortho_weight=s.ortho_weight,
                                                decoupled_weight_decay=r.decoupled_weight_decay),
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
        "bytes_stored": mem.bits_stored / 8, "wall_s": wall, "teacher_wall_s": teacher_wall,
        "settings": {k: getattr(s, k) for k in s.__dataclass_fields__},
    }
    if log:
        log(f"student accuracy {student_acc:.2f}% (teacher {teacher_acc:.2f}%, gap "
            f"{teacher_acc - student_acc:.2f} pp); memory {mem.bits_stored / 8:,.0f} B vs FP32 "
            f"{mem.bits_fp32 / 8:,.0f} B = {1 / mem.memory_ratio:.1f}x smaller "
            f"({1 / mem.memory_ratio_int8:.1f}x vs 8-bit); {wall:.1f} s")
    if out_dir is not None:
        out_dir = Path(out_dir)
        save_checkpoint(out_dir / "teacher.pt", teacher, "smallcnn", 10, 1, None,
                        weight_bits=teacher_bits)
        save_checkpoint(out_dir / "student.pt", student, "smallcnn", 10, 1, report.settings(),
                        {"accuracy": student_acc})
        atomic_write_text(out_dir / "digits.json", json.dumps(result, indent=2))
    return result


# ---------------------------------------------------------------------------------
# CIFAR-10 (data on disk)
# ---------------------------------------------------------------------------------
def _cifar_teacher(s: CifarSettings, teacher: str | Path | None, train_batches, out: Path,
                   device: str, log: Callable[[str], None]) -> nn.Module:
    """The teacher: a plain ResNet-18 checkpoint when given, else one trained here with
    the recipe's optimizer (insitugen: SGD lr 0.1 Nesterov, float weights; reference:
    RAdam lr 2e-3, 15-bit weights; cosine in both) and saved as ``out/teacher.pt``."""
    if teacher is not None:
        from .mlgify import load_checkpoint
        model, info = load_checkpoint(teacher)
        if info["mlg"] is not None or info["model"]["name"] != "resnet18":
            raise InsitugenError(f"--teacher '{teacher}' must be a plain resnet18 checkpoint")
        return model.to(device)
    r = recipe(s.recipe)
    model, bits = make_teacher("resnet18", 10, 3, s.recipe)
    model = model.to(device)
    train(model, train_batches, TrainSettings(epochs=s.teacher_epochs, lr=r.cifar_teacher_lr,
                                              optimizer=r.cifar_teacher_optimizer,
                                              decoupled_weight_decay=r.decoupled_weight_decay,
                                              ortho_weight=0.0,
                                              max_steps_per_epoch=s.max_steps_per_epoch),
          device=device, log=log)
    save_checkpoint(out / "teacher.pt", model, "resnet18", 10, 3, None, weight_bits=bits)
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
    r = recipe(s.recipe)

    def train_batches(epoch):
        for xb, yb in batches(xtr, ytr, s.batch_size, True, gen):
            yield random_crop_flip(normalize_cifar(xb, r.cifar_std), gen, pad=4, flip=True), yb

    def test_acc(m):
        return accuracy(m, ((normalize_cifar(xb, r.cifar_std), yb) for xb, yb in
                            batches(xte, yte, 512, False)), device)

    teacher_model = _cifar_teacher(s, teacher, train_batches, out, device, log)
    teacher_acc = test_acc(teacher_model)
    log(f"teacher accuracy {teacher_acc:.2f}%")
    student, report = make_student(teacher_model, **s.mlg())
    mem = memory_report(student, report.settings(), "resnet18")
    _project_student(s, student, teacher_model, log)
    train(student, train_batches, TrainSettings(epochs=s.epochs, lr=s.lr,
                                                ortho_weight=s.ortho_weight,
                                                decoupled_weight_decay=r.decoupled_weight_decay,
                                                max_steps_per_epoch=s.max_steps_per_epoch),
          teacher=teacher_model if s.kd else None, device=device,
          evaluate_fn=test_acc, log=log)
    student_acc = test_acc(student)
    save_checkpoint(out / "student.pt", student.cpu(), "resnet18", 10, 3, report.settings(),
                    {"accuracy": student_acc})
    result = {"teacher_accuracy": teacher_acc, "student_accuracy": student_acc,
              "memory_ratio_fp32": mem.memory_ratio, "param_ratio": mem.param_ratio,
              "recipe": s.recipe, **report.settings()}
    atomic_write_text(out / "cifar.json", json.dumps(result, indent=2))
    log(f"student accuracy {student_acc:.2f}% (teacher {teacher_acc:.2f}%), memory ratio "
        f"{mem.memory_ratio:.4f}")
    return result
