# SPDX-License-Identifier: Apache-2.0
"""``insitugen verilog CONFIG -o FILE``: emit the Verilog of a config (and its JSON sidecar)."""

from __future__ import annotations

import argparse
import time

from insitugen.config import load_config

HELP = "emit Verilog for a config"


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="config TOML")
    p.add_argument("-o", "--output", required=True, help="output Verilog file")
    p.add_argument("--lint", action="store_true",
                   help="also run Verilator --lint-only -Wall on the result")


def run(args: argparse.Namespace) -> int:
    from gen.verilog import lint_verilog, write_verilog

    cfg = load_config(args.config)
    t0 = time.perf_counter()
    write_verilog(cfg, args.output)
    if args.lint:
        lint_verilog(args.output)
    print(f"wrote {args.output} ({cfg.BLOCK}, {time.perf_counter() - t0:.2f} s)"
          + (", Verilator lint clean" if args.lint else ""))
    return 0
