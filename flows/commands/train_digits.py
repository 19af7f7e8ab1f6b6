# SPDX-License-Identifier: Apache-2.0
"""``insitugen train-digits``: teacher + MLG student on scikit-learn's digits (CPU, minutes)."""

from __future__ import annotations

import argparse

from golden.train_settings import DIGITS_SETS, DigitsSettings

from ._training import add_mlg_args, add_out_arg, report_outputs, settings_from_args

HELP = "teacher + MLG student on scikit-learn's digits (CPU, minutes)"
DEFAULT_OUT = "insitugen_out/digits"


def add_args(p: argparse.ArgumentParser) -> None:
    d = DigitsSettings()
    add_mlg_args(p, d)
    p.add_argument("--teacher-epochs", type=int, default=d.teacher_epochs,
                   help="teacher epochs (default: %(default)s)")
    p.add_argument("--student-epochs", type=int, default=d.student_epochs,
                   help="student epochs (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=d.batch_size,
                   help="(default: %(default)s)")
    p.add_argument("--teacher-lr", type=float, default=d.teacher_lr,
                   help="teacher RAdam learning rate (default: the recipe's, 3e-3 for "
                        "insitugen, 2e-3 for reference)")
    p.add_argument("--student-lr", type=float, default=d.student_lr,
                   help="student RAdam learning rate (default: %(default)s)")
    p.add_argument("--dataset", choices=DIGITS_SETS, default=d.dataset,
                   help="digits: scikit-learn's 8x8 digits; digits-hard: generated from them "
                        "(upscaled, warped, noisy, fixed seed) (default: %(default)s)")
    p.add_argument("--image-size", type=int, default=d.image_size,
                   help="side of the digits-hard images (default: %(default)s)")
    add_out_arg(p, DEFAULT_OUT, "digits.json")


def settings(args: argparse.Namespace) -> DigitsSettings:
    return settings_from_args(DigitsSettings, args)


def run(args: argparse.Namespace) -> int:
    """Run the digits reproduction; 0 (the figures are printed, the checkpoints written)."""
    from golden.train import reproduce_digits

    reproduce_digits(settings(args), args.out)
    report_outputs(args.out, "digits.json")
    return 0
