# SPDX-License-Identifier: Apache-2.0
"""Options the two training commands share: the student's MLG settings and recipe steps."""

from __future__ import annotations

import argparse
import dataclasses

from golden.train_settings import PROJECTIONS, RECIPES, MLGSettings


def add_mlg_args(p: argparse.ArgumentParser, d: MLGSettings) -> None:
    """Options of the fields of :class:`~golden.train_settings.MLGSettings`, defaults from ``d``."""
    p.add_argument("--base-in", type=int, default=d.base_in, help="Bi (default: %(default)s)")
    p.add_argument("--base-out", type=int, default=d.base_out, help="Bo (default: %(default)s)")
    p.add_argument("--qb", type=int, default=d.qb, help="basis bits (default: %(default)s)")
    p.add_argument("--qu", type=int, default=d.qu,
                   help="intra coefficient bits (default: %(default)s)")
    p.add_argument("--qv", type=int, default=d.qv,
                   help="cross coefficient bits (default: %(default)s)")
    p.add_argument("--recipe", choices=tuple(RECIPES), default=d.recipe,
                   help="reference: the MLG reference code's choices (15-bit RAdam teacher, "
                        "gradient projection only with KD, last iterate, decoupled weight "
                        "decay, w_bit gate, its CIFAR std); insitugen: ours (README, MLG in "
                        "PyTorch) (default: %(default)s)")
    p.add_argument("--w-bit", type=int, default=d.w_bit,
                   help="model weight width: layers that are not generated, and under the "
                        "reference recipe B/U/V are quantized only when < 16 "
                        "(default: %(default)s)")
    p.add_argument("--projection", choices=PROJECTIONS, default=d.projection,
                   help="projection initialization (default: the recipe's, svd+gradient "
                        "for insitugen, gradient for reference)")
    p.add_argument("--projection-steps", type=int, default=d.projection_steps,
                   help="gradient projection steps (default: %(default)s)")
    p.add_argument("--ortho-weight", type=float, default=d.ortho_weight,
                   help="orthonormality regularization weight (default: %(default)s)")
    p.add_argument("--no-kd", dest="kd", action="store_false",
                   help="train the student on labels only (no knowledge distillation)")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed (default: %(default)s)")
    p.add_argument("--threads", type=int, default=d.threads,
                   help="torch CPU threads (default: %(default)s)")


def add_out_arg(p: argparse.ArgumentParser, default: str, summary: str) -> None:
    """``--out DIR``, with a default folder so that ``insitugen export`` always has a
    ``student.pt`` to read after a plain training run."""
    p.add_argument("--out", metavar="DIR", default=default,
                   help=f"folder for teacher.pt, student.pt and {summary} "
                        f"(default: %(default)s)")


def report_outputs(out: str, summary: str, teacher_written: bool = True) -> None:
    """Print where the checkpoints went and the next command to run on them."""
    from pathlib import Path

    names = (["teacher.pt"] if teacher_written else []) + ["student.pt", summary]
    print(f"wrote {', '.join(names)} to {out}")
    print(f"next: insitugen export {Path(out) / 'student.pt'} --out {Path(out) / 'layers'}")


def settings_from_args(cls, args: argparse.Namespace):
    """An instance of the settings dataclass ``cls`` from the parsed options of its fields
    (every field has an option of the same name)."""
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})
