# SPDX-License-Identifier: Apache-2.0
"""``insitugen flow [CONFIG]``: Verilog + simulation + synthesis of one config."""

from __future__ import annotations

import argparse
from pathlib import Path

from synth.liberty import resolve_liberty

from ._common import add_simulator_arg, add_target_args, check_target_args, config_or_default
from ._preflight import require_simulator, require_yosys

HELP = ("verilog + sim + synth on one config, one short report (built-in default config "
        "when none is given)")


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="config TOML (default: the built-in ResNet-18 "
                                             "128->128 3x3 layer)")
    p.add_argument("--out-dir", default="insitugen_out",
                   help="folder for the Verilog, weights and reports (default: %(default)s)")
    add_simulator_arg(p)
    p.add_argument("--seed", type=int, default=1, help="stimulus seed (default: %(default)s)")
    p.add_argument("--liberty", help="Liberty file for area in um^2, or 'ihp' for the "
                                     "shipped IHP SG13G2 library")
    p.add_argument("--no-synth", action="store_true", help="skip the synthesis step")
    p.add_argument("--no-synth-cache", action="store_true",
                   help="run Yosys on every design even where an identical run's results are "
                        "cached (also INSITUGEN_SYNTH_CACHE=0)")
    add_target_args(p)


def run(args: argparse.Namespace) -> int:
    from flows.flow import run_flow

    # every input and tool before the first step: the config, the liberty, the simulator,
    # Yosys and the output folder (a bad one would otherwise fail after the simulation)
    cfg = config_or_default(args.config)
    if not args.no_synth:
        check_target_args(args)
    args.liberty = str(resolve_liberty(args.liberty)) if args.liberty else None
    require_simulator(args.simulator)
    if not args.no_synth:
        require_yosys()
    return run_flow(cfg, out_dir=Path(args.out_dir), simulator=args.simulator, seed=args.seed,
                    liberty=args.liberty, skip_synth=args.no_synth, target=args.target,
                    device=args.device, freq_mhz=args.freq,
                    synth_cache=False if args.no_synth_cache else None)
