"""``insitugen golden CONFIG --out FILE``: the integer golden model alone (codes -> W)."""

from __future__ import annotations

import argparse

from insitugen.config import load_config

from ._common import need_generator

HELP = "the PyTorch golden model alone"


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="generator config TOML")
    p.add_argument("--codes", help="code file (.npz) (default: random codes from --seed)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of random codes (default: %(default)s)")
    p.add_argument("--out", required=True, help="output weights (.npz with W int64)")


def run(args: argparse.Namespace) -> int:
    from golden.codes import load_codes, random_codes
    from golden.generate import generate
    from insitugen.files import save_npz

    cfg = need_generator(load_config(args.config), "golden")
    codes = load_codes(cfg, args.codes) if args.codes else random_codes(cfg, args.seed)
    w = generate(cfg, codes)
    save_npz(args.out, W=w.numpy())
    print(f"wrote {args.out}: W int64 {list(w.shape)}, range [{int(w.min())}, {int(w.max())}]")
    return 0
