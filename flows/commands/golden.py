# SPDX-License-Identifier: Apache-2.0
"""``insitugen golden CONFIG --out FILE``: the integer golden model alone (codes -> W)."""

from __future__ import annotations

import argparse

from insitugen.config import load_config
from insitugen.errors import ConfigError

from ._common import need_generator

HELP = "the PyTorch golden model alone"


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="generator config TOML")
    p.add_argument("--codes", help="code file (.npz) (default: random codes from --seed)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of random codes (default: %(default)s)")
    p.add_argument("--out", required=True, help="output weights (.npz with W int64)")
    p.add_argument("--codes-out", metavar="FILE", default=None,
                   help="also write the codes used (.npz: B, U, V and a 'meta' entry with the "
                        "config's axes, shapes and code bits, checked when the file is "
                        "loaded) (default: none)")


def run(args: argparse.Namespace) -> int:
    from gen.limits import check_golden
    from golden.codes import load_codes, random_codes, save_codes
    from golden.generate import generate
    from insitugen.files import save_npz

    cfg = need_generator(load_config(args.config), "golden")
    check_golden(cfg)                   # refuse up front what would not fit in memory
    codes = load_codes(cfg, args.codes) if args.codes else random_codes(cfg, args.seed)
    try:
        w = generate(cfg, codes)
    except (MemoryError, RuntimeError) as e:    # torch: "DefaultCPUAllocator: can't allocate"
        if not isinstance(e, MemoryError) and "allocat" not in str(e):
            raise
        raise ConfigError("the golden model ran out of memory on this layer: use a smaller "
                          "layer or a machine with more memory") from None
    save_npz(args.out, W=w.numpy())
    print(f"wrote {args.out}: W int64 {list(w.shape)}, range [{int(w.min())}, {int(w.max())}]")
    if args.codes_out:
        save_codes(args.codes_out, codes, config=cfg)
        print(f"wrote {args.codes_out}: codes " + ", ".join(
            f"{k} {list(v.shape)}" for k, v in codes.items()) + " with their metadata")
    return 0
