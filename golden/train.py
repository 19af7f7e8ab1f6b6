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
from a folder the user gives (``--data``).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from insitugen.errors import InsitugenError

from .codes import atomic_write
from .memory import memory_report
from .mlg import MLGLayerBase, QuantLinear, mlg_layers, ortho_loss
from .mlgify import mlgify, save_checkpoint
from .models import build_model

PROJECTIONS = ("svd", "gradient", "svd+gradient", "none")


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
        for p, b in zip(params, best_state):
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
    for name, m, w in pairs:
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


@dataclass
class TrainSettings:
    epochs: int = 200
    lr: float = 2e-3
    weight_decay: float = 5e-4
    optimizer: str = "radam"          # radam | sgd
    ortho_weight: float = 0.05
    T: float = 3.0
    alpha: float = 0.9
    max_steps_per_epoch: int = 0      # 0 = the whole loader


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


def _batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle: bool,
             gen: torch.Generator | None = None, augment: Callable | None = None):
    idx = torch.randperm(len(x), generator=gen) if shuffle else torch.arange(len(x))
    for i in range(0, len(x), batch_size):
        j = idx[i:i + batch_size]
        xb = x[j]
        if augment is not None:
            xb = augment(xb, gen)
        yield xb, y[j]


def random_crop_flip(x: torch.Tensor, gen: torch.Generator | None, pad: int,
                     flip: bool) -> torch.Tensor:
    """Random crop after zero padding by ``pad`` pixels (and random horizontal flip)."""
    n, _, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h)[None, :])                  # [n, h]
    cols = (dx[:, None] + torch.arange(w)[None, :])                  # [n, w]
    out = xp[torch.arange(n)[:, None, None, None], torch.arange(x.shape[1])[None, :, None, None],
             rows[:, None, :, None], cols[:, None, None, :]]
    if flip:
        f = torch.rand(n, generator=gen) < 0.5
        out[f] = out[f].flip(-1)
    return out


def make_student(teacher: nn.Module, base_in: int, base_out: int, qb: int, qu: int, qv: int,
                 classifier_bits: int | None = None):
    """``(student, report)``: mlgify of a deep copy of the teacher."""
    student = copy.deepcopy(teacher)
    report = mlgify(student, base_in, base_out, qb, qu, qv, classifier_bits)
    return student, report


# ---------------------------------------------------------------------------------
# digits reproduction (CPU, minutes)
# ---------------------------------------------------------------------------------
@dataclass
class DigitsSettings:
    base_in: int = 2
    base_out: int = 44
    qb: int = 3
    qu: int = 6
    qv: int = 3
    teacher_epochs: int = 40
    student_epochs: int = 60
    batch_size: int = 64
    teacher_lr: float = 3e-3
    student_lr: float = 2e-3
    projection: str = "svd+gradient"
    projection_steps: int = 300
    ortho_weight: float = 0.05
    kd: bool = True
    seed: int = 0
    threads: int = 1


def digits_data(seed: int = 0):
    """scikit-learn's 8x8 digits (shipped with the package, no download): a stratified
    75/25 split, pixels scaled to [0, 1], as float tensors ``[N, 1, 8, 8]``."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None]
    xtr, xte, ytr, yte = train_test_split(x, d.target, test_size=0.25, random_state=seed,
                                          stratify=d.target)
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))
    return t(xtr), t(ytr).long(), t(xte), t(yte).long()


def reproduce_digits(s: DigitsSettings | None = None, out_dir: str | Path | None = None,
                     log: Callable[[str], None] | None = print) -> dict:
    """Teacher and MLG student (SmallCNN) on the digits; returns accuracies, memory
    compression and wall time. ``out_dir`` (optional) receives ``teacher.pt``,
    ``student.pt`` (MLG checkpoints) and ``digits.json``."""
    s = s or DigitsSettings()
    if s.projection not in PROJECTIONS:
        raise InsitugenError(f"projection '{s.projection}' is unknown: use one of "
                             f"{', '.join(PROJECTIONS)}")
    # check the MLG settings before minutes of teacher training
    mlgify(build_model("smallcnn", 10, 1), s.base_in, s.base_out, s.qb, s.qu, s.qv)
    t0 = time.perf_counter()
    torch.set_num_threads(max(1, s.threads))
    torch.manual_seed(s.seed)
    xtr, ytr, xte, yte = digits_data(s.seed)
    gen = torch.Generator().manual_seed(s.seed)
    aug = lambda xb, g: random_crop_flip(xb, g, pad=1, flip=False)
    batches = lambda epoch: _batches(xtr, ytr, s.batch_size, True, gen, aug)
    test_acc = lambda m: accuracy(m, _batches(xte, yte, 512, False))

    teacher = build_model("smallcnn", 10, 1)
    if log:
        log(f"teacher: SmallCNN, {sum(p.numel() for p in teacher.parameters())} parameters, "
            f"{len(xtr)} train / {len(xte)} test images")
    train(teacher, batches, TrainSettings(epochs=s.teacher_epochs, lr=s.teacher_lr,
                                          ortho_weight=0.0), log=None)
    teacher_acc = test_acc(teacher)
    if log:
        log(f"teacher accuracy {teacher_acc:.2f}%")

    student, report = make_student(teacher, s.base_in, s.base_out, s.qb, s.qu, s.qv)
    mem = memory_report(student, report.settings(), "smallcnn")
    proj = project(student, teacher, s.projection, s.projection_steps, log=log)
    projected_acc = test_acc(student)
    if log:
        log(f"student after projection: accuracy {projected_acc:.2f}%")
    train(student, batches, TrainSettings(epochs=s.student_epochs, lr=s.student_lr,
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
        text = json.dumps(result, indent=2)
        atomic_write(out_dir / "digits.json", lambda tmp: Path(tmp).write_text(text))
    return result


def _add_mlg_args(p: argparse.ArgumentParser, d) -> None:
    p.add_argument("--base-in", type=int, default=d.base_in, help="Bi (default: %(default)s)")
    p.add_argument("--base-out", type=int, default=d.base_out, help="Bo (default: %(default)s)")
    p.add_argument("--qb", type=int, default=d.qb, help="basis bits (default: %(default)s)")
    p.add_argument("--qu", type=int, default=d.qu,
                   help="intra coefficient bits (default: %(default)s)")
    p.add_argument("--qv", type=int, default=d.qv,
                   help="cross coefficient bits (default: %(default)s)")
    p.add_argument("--projection", choices=PROJECTIONS, default=d.projection,
                   help="projection initialization (default: %(default)s)")
    p.add_argument("--projection-steps", type=int, default=d.projection_steps,
                   help="gradient projection steps (default: %(default)s)")
    p.add_argument("--ortho-weight", type=float, default=d.ortho_weight,
                   help="orthonormality regularization weight (default: %(default)s)")
    p.add_argument("--no-kd", dest="kd", action="store_false",
                   help="train the student on labels only (no knowledge distillation)")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed (default: %(default)s)")
    p.add_argument("--threads", type=int, default=d.threads,
                   help="torch CPU threads (default: %(default)s)")


def add_train_digits_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``insitugen train-digits``."""
    d = DigitsSettings()
    _add_mlg_args(parser, d)
    parser.add_argument("--teacher-epochs", type=int, default=d.teacher_epochs,
                        help="teacher epochs (default: %(default)s)")
    parser.add_argument("--student-epochs", type=int, default=d.student_epochs,
                        help="student epochs (default: %(default)s)")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="write teacher.pt, student.pt and digits.json to DIR")


def cmd_train_digits(args: argparse.Namespace) -> int:
    """Run the digits reproduction; exit 0 (the figures are printed)."""
    s = DigitsSettings(base_in=args.base_in, base_out=args.base_out, qb=args.qb, qu=args.qu,
                       qv=args.qv, teacher_epochs=args.teacher_epochs,
                       student_epochs=args.student_epochs, projection=args.projection,
                       projection_steps=args.projection_steps, ortho_weight=args.ortho_weight,
                       kd=args.kd, seed=args.seed, threads=args.threads)
    reproduce_digits(s, args.out)
    return 0


# ---------------------------------------------------------------------------------
# CIFAR-10 (data on disk)
# ---------------------------------------------------------------------------------
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR_TEST_FILE = "test_batch.bin"


class DataError(InsitugenError, ValueError):
    """The data folder given with --data is missing files or holds the wrong format."""


def _read_cifar_bin(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = np.fromfile(path, dtype=np.uint8)
    rec = 1 + 3 * 32 * 32
    if raw.size == 0 or raw.size % rec:
        raise DataError(f"'{path}' is not a CIFAR-10 binary batch: {raw.size} bytes is not a "
                        f"multiple of the {rec}-byte record (1 label byte + 3x32x32 pixels)")
    raw = raw.reshape(-1, rec)
    labels = raw[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise DataError(f"'{path}' holds label {labels.max()} > 9: not CIFAR-10")
    return raw[:, 1:].reshape(-1, 3, 32, 32), labels


def load_cifar10(path: str | Path):
    """CIFAR-10 from the *binary version* (``cifar-10-batches-bin``: ``data_batch_1..5.bin``,
    ``test_batch.bin``), given as that folder or its parent. The Python version is a
    pickle and is refused (it could run code). Returns uint8 ``[N, 3, 32, 32]`` images and
    int64 labels, train and test."""
    path = Path(path)
    for cand in (path, path / "cifar-10-batches-bin"):
        if (cand / CIFAR_TEST_FILE).is_file():
            path = cand
            break
    else:
        if (path / "data_batch_1").is_file() or (path / "cifar-10-batches-py").is_dir():
            raise DataError(f"'{path}' holds the Python (pickle) version of CIFAR-10, which is "
                            f"refused: use the binary version (cifar-10-batches-bin)")
        raise DataError(f"'{path}' holds no CIFAR-10 binary batches: pass the folder "
                        f"cifar-10-batches-bin (data_batch_1.bin .. data_batch_5.bin, "
                        f"test_batch.bin) or its parent")
    missing = [f for f in CIFAR_TRAIN_FILES if not (path / f).is_file()]
    if missing:
        raise DataError(f"'{path}' lacks {missing[0]} (CIFAR-10 binary version needs "
                        f"{', '.join(CIFAR_TRAIN_FILES)}, {CIFAR_TEST_FILE})")
    parts = [_read_cifar_bin(path / f) for f in CIFAR_TRAIN_FILES]
    xtr = np.concatenate([p[0] for p in parts])
    ytr = np.concatenate([p[1] for p in parts])
    xte, yte = _read_cifar_bin(path / CIFAR_TEST_FILE)
    return (torch.from_numpy(xtr), torch.from_numpy(ytr), torch.from_numpy(xte),
            torch.from_numpy(yte))


def _normalize(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    return (x.float() / 255.0 - mean) / std


def add_train_cifar_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``insitugen train-cifar``."""
    parser.add_argument("--data", metavar="PATH", required=True,
                        help="CIFAR-10 binary version folder (cifar-10-batches-bin) or its parent")
    parser.add_argument("--out", metavar="DIR", required=True,
                        help="folder for teacher.pt, student.pt and cifar.json")
    parser.add_argument("--teacher", metavar="CHECKPOINT", default=None,
                        help="trained teacher checkpoint (default: train one first)")
    parser.add_argument("--teacher-epochs", type=int, default=200,
                        help="teacher epochs when no --teacher is given (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=200,
                        help="student epochs (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=128, help="(default: %(default)s)")
    parser.add_argument("--lr", type=float, default=2e-3,
                        help="student RAdam learning rate (default: %(default)s)")
    parser.add_argument("--max-steps-per-epoch", type=int, default=0,
                        help="stop each epoch after N batches; 0 = whole epoch "
                             "(default: %(default)s)")
    parser.add_argument("--device", default="auto",
                        help="cpu, cuda or auto (default: %(default)s)")
    d = DigitsSettings(projection_steps=3000)
    _add_mlg_args(parser, d)


def cmd_train_cifar(args: argparse.Namespace) -> int:
    """Teacher (trained or loaded) -> MLG student with projection, KD, orthonormality
    regularization and QAT, on CIFAR-10 from disk. Writes checkpoints and cifar.json."""
    from .mlgify import load_checkpoint
    # check the MLG settings before reading data or training
    mlgify(build_model("resnet18", 10, 3), args.base_in, args.base_out, args.qb, args.qu, args.qv)
    if args.projection not in PROJECTIONS:
        raise InsitugenError(f"projection '{args.projection}' is unknown: use one of "
                             f"{', '.join(PROJECTIONS)}")
    torch.set_num_threads(max(1, args.threads))
    torch.manual_seed(args.seed)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" \
        else args.device
    xtr, ytr, xte, yte = load_cifar10(args.data)
    out = Path(args.out)
    gen = torch.Generator().manual_seed(args.seed)

    def batches(epoch):
        for xb, yb in _batches(xtr, ytr, args.batch_size, True, gen):
            yield random_crop_flip(_normalize(xb), gen, pad=4, flip=True), yb

    def test_acc(m):
        return accuracy(m, ((_normalize(xb), yb) for xb, yb in
                            _batches(xte, yte, 512, False)), device)

    if args.teacher:
        teacher, info = load_checkpoint(args.teacher)
        if info["mlg"] is not None or info["model"]["name"] != "resnet18":
            raise InsitugenError(f"--teacher '{args.teacher}' must be a plain resnet18 checkpoint")
        teacher = teacher.to(device)
    else:
        teacher = build_model("resnet18", 10, 3).to(device)
        train(teacher, batches, TrainSettings(epochs=args.teacher_epochs, lr=0.1,
                                              optimizer="sgd", ortho_weight=0.0,
                                              max_steps_per_epoch=args.max_steps_per_epoch),
              device=device, log=print)
        save_checkpoint(out / "teacher.pt", teacher, "resnet18", 10, 3, None)
    teacher_acc = test_acc(teacher)
    print(f"teacher accuracy {teacher_acc:.2f}%")
    student, report = make_student(teacher, args.base_in, args.base_out, args.qb, args.qu,
                                   args.qv)
    mem = memory_report(student, report.settings(), "resnet18")
    project(student, teacher, args.projection, args.projection_steps, log=print)
    train(student, batches, TrainSettings(epochs=args.epochs, lr=args.lr,
                                          ortho_weight=args.ortho_weight,
                                          max_steps_per_epoch=args.max_steps_per_epoch),
          teacher=teacher if args.kd else None, device=device,
          evaluate_fn=test_acc, log=print)
    student_acc = test_acc(student)
    save_checkpoint(out / "student.pt", student.cpu(), "resnet18", 10, 3, report.settings(),
                    {"accuracy": student_acc})
    result = {"teacher_accuracy": teacher_acc, "student_accuracy": student_acc,
              "memory_ratio_fp32": mem.memory_ratio, "param_ratio": mem.param_ratio,
              **report.settings()}
    text = json.dumps(result, indent=2)
    atomic_write(out / "cifar.json", lambda tmp: Path(tmp).write_text(text))
    print(f"student accuracy {student_acc:.2f}% (teacher {teacher_acc:.2f}%), memory ratio "
          f"{mem.memory_ratio:.4f}")
    return 0
