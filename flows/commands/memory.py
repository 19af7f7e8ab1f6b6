# SPDX-License-Identifier: Apache-2.0
"""``insitugen memory MODEL ...``: per-layer MLG memory table of a shipped model."""

from __future__ import annotations

import argparse

from golden.train_settings import RECIPES
from insitugen.errors import InsitugenError

HELP = "per-layer MLG memory table and ratios of a shipped model"


def add_args(p: argparse.ArgumentParser) -> None:
    # No `choices`: the model names live in golden.models, which imports torch; an
    # unknown name is refused by golden.models.build_model, which lists them.
    p.add_argument("model", metavar="MODEL",
                   help="shipped model of golden.models, e.g. resnet18 (an unknown name "
                        "lists them)")
    p.add_argument("--num-classes", type=int, default=10,
                   help="classifier outputs (default: %(default)s)")
    p.add_argument("--in-channels", type=int, default=None,
                   help="input channels (default: the model's own, 3 or 1)")
    p.add_argument("--base-in", type=int, required=True, help="Bi (0 = intra level off)")
    p.add_argument("--base-out", type=int, required=True, help="Bo (0 = cross level off)")
    p.add_argument("--qb", type=int, required=True, help="basis bits (32 = float)")
    p.add_argument("--qu", type=int, required=True, help="intra coefficient bits")
    p.add_argument("--qv", type=int, required=True, help="cross coefficient bits")
    p.add_argument("--classifier-bits", type=int, default=None,
                   help="classifier weight bits (default: 8; 32 when qb = qu = qv = 32)")
    p.add_argument("--w-bit", type=int, default=8,
                   help="model weight width: layers that are not generated; under the "
                        "reference recipe also the gate (>= 16: float B/U/V, counted at 32 "
                        "bits) (default: %(default)s)")
    p.add_argument("--recipe", choices=tuple(RECIPES), default="insitugen",
                   help="quantization gate and accounting: insitugen (B/U/V always at "
                        "qb/qu/qv, non-generated layers at w_bit) or reference (its w_bit "
                        "gate, non-generated layers at 32 bits) (default: %(default)s)")
    p.add_argument("--json", metavar="OUT", default=None,
                   help="also write the table and totals as JSON to OUT")


def run(args: argparse.Namespace) -> int:
    """Print the per-layer table and the totals; optionally write JSON. Returns 0."""
    from golden.memory import model_memory
    from insitugen.files import atomic_write_text

    if args.num_classes < 1:
        raise InsitugenError(f"--num-classes = {args.num_classes} must be >= 1")
    rep = model_memory(args.model, args.base_in, args.base_out, args.qb, args.qu, args.qv,
                       num_classes=args.num_classes, in_channels=args.in_channels,
                       classifier_bits=args.classifier_bits, w_bit=args.w_bit,
                       gate=RECIPES[args.recipe].gate)
    s = rep.settings
    print(f"{args.model} ({args.num_classes} classes), (Bi, Bo, qb, qu, qv) = "
          f"({s['base_in']}, {s['base_out']}, {s['qb']}, {s['qu']}, {s['qv']}), classifier "
          f"{s['classifier_bits']} bits, w_bit {s['w_bit']}, {s['gate']} gate\n")
    print(rep)
    if args.json:
        atomic_write_text(args.json, rep.to_json())
    return 0
