# SPDX-License-Identifier: Apache-2.0
"""``insitugen export CHECKPOINT --out DIR``: trained MLG model -> generator configs + codes."""

from __future__ import annotations

import argparse

from insitugen.config import ROUNDINGS, GeneratorConfig

HELP = "trained MLG checkpoint -> per-layer generator configs (.toml) + codes (.npz)"


def add_args(p: argparse.ArgumentParser) -> None:
    d = GeneratorConfig()
    p.add_argument("checkpoint", metavar="CHECKPOINT",
                   help="MLG checkpoint (.pt written by insitugen train-digits / train-cifar)")
    p.add_argument("--out", metavar="DIR", required=True,
                   help="folder for <layer>.toml, <layer>.npz and layers.json")
    p.add_argument("--engine-bits", type=int, default=d.engine_bits,
                   help="engine multiplier width (default: %(default)s)")
    p.add_argument("--lanes", type=int, default=d.lanes,
                   help="multipliers working in parallel (default: %(default)s)")
    p.add_argument("--out-bits", type=int, default=0,
                   help="requantize generated weights to this width; 0 = full precision "
                        "(default: %(default)s)")
    p.add_argument("--shift", type=int, default=0,
                   help="right shift before requantization (default: %(default)s)")
    p.add_argument("--rounding", choices=ROUNDINGS, default=d.rounding,
                   help="(default: %(default)s)")
    p.add_argument("--beat-weights", type=int, default=d.beat_weights,
                   help="weights per output beat, a divisor of --lanes; 0 = auto "
                        "(default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    from gen.export import export_checkpoint

    index = export_checkpoint(args.checkpoint, args.out, engine_bits=args.engine_bits,
                              lanes=args.lanes, out_bits=args.out_bits, shift=args.shift,
                              rounding=args.rounding, beat_weights=args.beat_weights)
    print(f"exported {len(index['layers'])} MLG layers to {args.out} "
          f"({len(index['not_exported'])} layers not generated; see layers.json)")
    for name in index["layers"]:
        print(f"  {name}: {name}.toml + {name}.npz")
    return 0
