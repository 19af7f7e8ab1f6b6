# SPDX-License-Identifier: Apache-2.0
"""``insitugen train-cifar --data PATH [--out DIR]``: ResNet-18 MLG on CIFAR-10 from disk."""

from __future__ import annotations

import argparse

from golden.train_settings import CifarSettings

from ._training import add_mlg_args, add_out_arg, report_outputs, settings_from_args

HELP = "ResNet-18 MLG on CIFAR-10 from disk (--data PATH)"
DEFAULT_OUT = "insitugen_out/cifar"


def add_args(p: argparse.ArgumentParser) -> None:
    d = CifarSettings()
    p.add_argument("--data", metavar="PATH", required=True,
                   help="CIFAR-10 folder, binary (cifar-10-batches-bin) or Python version "
                        "(cifar-10-batches-py), or its parent")
    add_out_arg(p, DEFAULT_OUT, "cifar.json")
    p.add_argument("--teacher", metavar="CHECKPOINT", default=None,
                   help="trained teacher checkpoint (default: train one first)")
    p.add_argument("--teacher-epochs", type=int, default=d.teacher_epochs,
                   help="teacher epochs when no --teacher is given, trained with the "
                        "recipe's optimizer (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=d.epochs,
                   help="student epochs (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=d.batch_size,
                   help="(default: %(default)s)")
    p.add_argument("--lr", type=float, default=d.lr,
                   help="student RAdam learning rate (default: %(default)s)")
    p.add_argument("--max-steps-per-epoch", type=int, default=d.max_steps_per_epoch,
                   help="stop each epoch after N batches; 0 = whole epoch "
                        "(default: %(default)s)")
    p.add_argument("--device", default=d.device,
                   help="cpu, cuda or auto (default: %(default)s)")
    add_mlg_args(p, d)


def run(args: argparse.Namespace) -> int:
    """Train; writes checkpoints and cifar.json; 0."""
    from golden.train import train_cifar

    train_cifar(args.data, args.out, settings_from_args(CifarSettings, args),
                teacher=args.teacher)
    report_outputs(args.out, "cifar.json", teacher_written=args.teacher is None)
    return 0
