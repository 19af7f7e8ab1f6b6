# SPDX-License-Identifier: Apache-2.0
"""``insitugen sweep SPACE.toml``: design-space sweep, cached, CSV + JSON + PNG plots."""

from __future__ import annotations

import argparse
from pathlib import Path

from insitugen.errors import ConfigError
from synth.liberty import resolve_liberty

from ._common import LazyChoices, check_target_args

HELP = ("design-space sweep in parallel processes or on Dask, cached, CSV + JSON + PNG "
        "plots")


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("space", help="space TOML: [base] fields and a [grid] or [random] "
                                 "table (see examples/sweep/)")
    p.add_argument("--jobs", "-j", type=int, default=1,
                   help="configs evaluated in parallel processes; ignored with "
                        "--scheduler (default: %(default)s)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on an existing Dask cluster at this scheduler address "
                        "(tcp://HOST:PORT; pip install insitugen[dask]) instead of "
                        "local processes")
    p.add_argument("--out", default="sweep_out",
                   help="output folder for results.csv, results.json, plots/ "
                        "(default: %(default)s)")
    p.add_argument("--cache-dir", help="folder of per-point cached results (default: OUT/cache)")
    p.add_argument("--liberty", help="Liberty file for area in um^2, or 'ihp' for the shipped "
                                     "IHP SG13G2 library (default: "
                                     "PDK-free NAND2 equivalents)")
    p.add_argument("--target", choices=LazyChoices("synth.fpga", "TARGETS"), default="asic",
                   metavar="TARGET", help="asic, or an FPGA: LUT counts, and P&R Fmax on "
                                          "ecp5/ice40/gowin; %(choices)s (default: %(default)s)")
    p.add_argument("--no-plots", action="store_true", help="write CSV and JSON only")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """0 when every valid point was evaluated, 1 when some evaluation failed (its reason
    is in the outputs); bad input raises ConfigError."""
    from flows.sweep import load_space, run_sweep, write_outputs

    space = load_space(args.space)
    if args.jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, not {args.jobs}")
    args.device = args.freq = None                  # a sweep picks the device per point
    check_target_args(args)
    args.liberty = str(resolve_liberty(args.liberty)) if args.liberty else None
    out = Path(args.out)
    cache_dir = Path(args.cache_dir) if args.cache_dir else out / "cache"
    result = run_sweep(space, liberty=args.liberty, jobs=args.jobs, scheduler=args.scheduler,
                       cache_dir=cache_dir, progress=not args.no_progress,
                       target=args.target)
    written = write_outputs(result, out, plots=not args.no_plots)
    print(result.summary())
    for row in result.rows:
        if row["status"] in ("invalid", "error"):
            print(f"  point {row['index']} {row['status']}: {row['reason']}")
    for path in written.values():
        print(f"wrote {path}")
    return 1 if result.n_failed else 0
