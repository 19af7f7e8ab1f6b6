# SPDX-License-Identifier: Apache-2.0
"""Settings of the MLG training recipes (:mod:`golden.train`), torch-free so the command
line can show their defaults without loading PyTorch.

The MLG defaults (Bi, Bo, qb, qu, qv) are the generator config's own
(:class:`~insitugen.config.GeneratorConfig`): one definition for the hardware and the
training.

Two recipes (:data:`RECIPES`, ``--recipe``): ``reference`` reproduces the choices of the
MLG reference code (JeremieMelo/Memory-Efficient-Multi-Level-Generation, its configs
``cifar10/resnet18/train/{pretrain,train}.yml``); ``insitugen`` keeps ours where we
found them better or simpler. :class:`Recipe` lists every difference.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from insitugen.config import GeneratorConfig

__all__ = ["PROJECTIONS", "MLG_FIELDS", "RECIPES", "Recipe", "recipe", "TrainSettings",
           "MLGSettings", "DigitsSettings", "CifarSettings", "CIFAR_MEAN", "CIFAR_STD",
           "CIFAR_STD_REFERENCE", "DIGITS_SETS"]

#: Projection initializations of the student (:func:`golden.train.project`).
PROJECTIONS = ("svd", "gradient", "svd+gradient", "none")

#: The MLG settings a student is built with (:func:`golden.mlgify.mlgify`).
MLG_FIELDS = ("base_in", "base_out", "qb", "qu", "qv")

#: The data sets of ``train-digits --dataset`` (:func:`golden.datasets.digits_set`).
DIGITS_SETS = ("digits", "digits-hard")

_GENERATOR_DEFAULTS = {f.name: f.default for f in dataclasses.fields(GeneratorConfig)}

#: CIFAR-10 per-channel mean; std of the training set, and the std the reference
#: normalizes with (a value widely copied in CIFAR code, not the data set's std).
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
CIFAR_STD_REFERENCE = (0.2023, 0.1994, 0.2010)


@dataclass(frozen=True)
class Recipe:
    """The choices where the two recipes differ."""

    name: str
    #: quantization gate of mlgify (:data:`golden.mlg.GATES`)
    gate: str
    #: teacher weight width: 32 = float; the reference's teacher has ``weight_bit: 15``
    #: (every conv / linear weight through the 15-bit DoReFa quantizer)
    teacher_bits: int
    #: CIFAR teacher optimizer and learning rate (cosine schedule in both)
    cifar_teacher_optimizer: str
    cifar_teacher_lr: float
    #: digits teacher learning rate (RAdam in both)
    digits_teacher_lr: float
    #: projection used when none is given
    projection: str
    #: gradient projection result: the best iterate seen, or the last (reference)
    projection_keep: str
    #: the reference projects only when it distills (its projection sits in the KD branch)
    projection_needs_kd: bool
    #: RAdam weight decay: decoupled ``p -= lr * wd * p`` (reference) or coupled L2
    decoupled_weight_decay: bool
    #: CIFAR-10 normalization std
    cifar_std: tuple[float, float, float]


#: name -> :class:`Recipe`
RECIPES = {
    "insitugen": Recipe("insitugen", gate="insitugen", teacher_bits=32,
                        cifar_teacher_optimizer="sgd", cifar_teacher_lr=0.1,
                        digits_teacher_lr=3e-3, projection="svd+gradient",
                        projection_keep="best", projection_needs_kd=False,
                        decoupled_weight_decay=False, cifar_std=CIFAR_STD),
    "reference": Recipe("reference", gate="reference", teacher_bits=15,
                        cifar_teacher_optimizer="radam", cifar_teacher_lr=2e-3,
                        digits_teacher_lr=2e-3, projection="gradient",
                        projection_keep="last", projection_needs_kd=True,
                        decoupled_weight_decay=True, cifar_std=CIFAR_STD_REFERENCE),
}


def recipe(name: str) -> Recipe:
    """The :class:`Recipe` named ``name``; an unknown name is one clear error."""
    if name not in RECIPES:
        from insitugen.errors import InsitugenError
        raise InsitugenError(f"recipe '{name}' is unknown: use one of {', '.join(RECIPES)}")
    return RECIPES[name]


@dataclass
class TrainSettings:
    """One training loop (:func:`golden.train.train`)."""

    epochs: int = 200
    lr: float = 2e-3
    weight_decay: float = 5e-4
    optimizer: str = "radam"          # radam | sgd
    decoupled_weight_decay: bool = False   # RAdam: p -= lr * wd * p instead of L2
    ortho_weight: float = 0.05
    T: float = 3.0
    alpha: float = 0.9
    max_steps_per_epoch: int = 0      # 0 = the whole loader


@dataclass
class MLGSettings:
    """The student's MLG widths and the recipe steps both reproductions share."""

    base_in: int = _GENERATOR_DEFAULTS["base_in"]
    base_out: int = _GENERATOR_DEFAULTS["base_out"]
    qb: int = _GENERATOR_DEFAULTS["qb"]
    qu: int = _GENERATOR_DEFAULTS["qu"]
    qv: int = _GENERATOR_DEFAULTS["qv"]
    #: the model's weight width: layers that are not generated, the reference gate's switch
    w_bit: int = 8
    recipe: str = "insitugen"
    projection: str | None = None     # None: the recipe's
    projection_steps: int = 300
    ortho_weight: float = 0.05
    kd: bool = True
    seed: int = 0
    threads: int = 1

    def mlg(self) -> dict[str, int | str]:
        """The arguments of mlgify: ``base_in``, ``base_out``, ``qb``, ``qu``, ``qv``,
        ``w_bit`` and the recipe's ``gate``."""
        return {**{k: getattr(self, k) for k in MLG_FIELDS}, "w_bit": self.w_bit,
                "gate": recipe(self.recipe).gate}

    def projection_method(self) -> str:
        """The projection that runs: the given one, else the recipe's; ``none`` under a
        recipe that projects only with KD when KD is off."""
        r = recipe(self.recipe)
        if r.projection_needs_kd and not self.kd:
            return "none"
        return self.projection if self.projection is not None else r.projection


@dataclass
class DigitsSettings(MLGSettings):
    """The CPU-sized reproduction on scikit-learn's digits
    (:func:`golden.train.reproduce_digits`)."""

    teacher_epochs: int = 40
    student_epochs: int = 60
    batch_size: int = 64
    teacher_lr: float | None = None    # None: the recipe's (RAdam 3e-3 / 2e-3)
    dataset: str = "digits"            # digits | digits-hard (golden.datasets.DIGITS_SETS)
    image_size: int = 16               # side of the digits-hard images
    student_lr: float = 2e-3


@dataclass
class CifarSettings(MLGSettings):
    """ResNet-18 on CIFAR-10 from disk (:func:`golden.train.train_cifar`)."""

    projection_steps: int = 3000
    teacher_epochs: int = 200           # when no trained teacher is given (recipe's optimizer)
    epochs: int = 200                   # student epochs
    batch_size: int = 128
    lr: float = 2e-3                    # student RAdam learning rate
    max_steps_per_epoch: int = 0        # 0 = whole epoch
    device: str = "auto"                # cpu | cuda | auto
