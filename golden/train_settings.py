"""Settings of the MLG training recipes (:mod:`golden.train`), torch-free so the command
line can show their defaults without loading PyTorch.

The MLG defaults (Bi, Bo, qb, qu, qv) are the generator config's own
(:class:`~insitugen.config.GeneratorConfig`): one definition for the hardware and the
training.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from insitugen.config import GeneratorConfig

__all__ = ["PROJECTIONS", "MLG_FIELDS", "TrainSettings", "MLGSettings", "DigitsSettings",
           "CifarSettings"]

#: Projection initializations of the student (:func:`golden.train.project`).
PROJECTIONS = ("svd", "gradient", "svd+gradient", "none")

#: The MLG settings a student is built with (:func:`golden.mlgify.mlgify`).
MLG_FIELDS = ("base_in", "base_out", "qb", "qu", "qv")

_GENERATOR_DEFAULTS = {f.name: f.default for f in dataclasses.fields(GeneratorConfig)}


@dataclass
class TrainSettings:
    """One training loop (:func:`golden.train.train`)."""

    epochs: int = 200
    lr: float = 2e-3
    weight_decay: float = 5e-4
    optimizer: str = "radam"          # radam | sgd
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
    projection: str = "svd+gradient"
    projection_steps: int = 300
    ortho_weight: float = 0.05
    kd: bool = True
    seed: int = 0
    threads: int = 1

    def mlg(self) -> dict[str, int]:
        """``base_in``, ``base_out``, ``qb``, ``qu``, ``qv`` (the arguments of mlgify)."""
        return {k: getattr(self, k) for k in MLG_FIELDS}


@dataclass
class DigitsSettings(MLGSettings):
    """The CPU-sized reproduction on scikit-learn's digits
    (:func:`golden.train.reproduce_digits`)."""

    teacher_epochs: int = 40
    student_epochs: int = 60
    batch_size: int = 64
    teacher_lr: float = 3e-3
    student_lr: float = 2e-3


@dataclass
class CifarSettings(MLGSettings):
    """ResNet-18 on CIFAR-10 from disk (:func:`golden.train.train_cifar`)."""

    projection_steps: int = 3000
    teacher_epochs: int = 200           # when no trained teacher is given
    epochs: int = 200                   # student epochs
    batch_size: int = 128
    lr: float = 2e-3                    # student RAdam learning rate
    max_steps_per_epoch: int = 0        # 0 = whole epoch
    device: str = "auto"                # cpu | cuda | auto
