# SPDX-License-Identifier: Apache-2.0
"""``insitugen sim CONFIG``: the generated Verilog under cocotb against the golden model."""

from __future__ import annotations

import argparse
from pathlib import Path

from insitugen.config import Config, GeneratorConfig, load_config
from insitugen.errors import ConfigError

from ._common import add_sim_args
from ._preflight import require_simulator, require_writable_file

HELP = "simulate the generated Verilog under cocotb against the golden model"


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="config TOML")
    p.add_argument("--codes", help="code file (.npz) for a generator config (default: random "
                                   "codes from --seed)")
    p.add_argument("--out", help="write the weights the RTL produced (W int64, cycles) here")
    p.add_argument("--coverage", metavar="DIR",
                   help="add this run's functional coverage to DIR/parts and write the merged "
                        "report of every run there to DIR/functional_coverage.{txt,json}")
    add_sim_args(p)


def _testbench_extra(cfg: Config, args: argparse.Namespace) -> dict[str, str] | None:
    """The testbench's extra parameters: the code file and the weights output."""
    extra = {}
    if isinstance(cfg, GeneratorConfig):
        if args.codes:
            from golden.codes import load_codes
            load_codes(cfg, args.codes)          # validate before any build starts
            extra["codes"] = str(Path(args.codes).resolve())
        if args.out:
            extra["out"] = str(Path(args.out).resolve())
    elif args.out:
        raise ConfigError("--out applies to generator configs only (it writes the weights)")
    elif args.codes:
        raise ConfigError("--codes applies to generator configs only; the recombination "
                          "testbench draws its own partials from --seed")
    return extra or None


def _summary(cfg: Config, res) -> str:
    msg = (f"PASS: {cfg.BLOCK} on {res.simulator}, seed {res.seed}: {res.beats} beats "
           f"matched the golden model bit for bit")
    if res.cycles:
        msg += f", {res.cycles} cycles"
        eff = res.details.get("efficiency")
        if eff:
            msg += f" ({100 * eff:.1f}% of the MAC lower bound)"
    bps = res.details.get("beats_per_s")
    return (msg + f"; build {res.build_s:.1f} s, sim {res.sim_s:.1f} s"
            + (f" ({bps:,.0f} beats/s)" if bps else ""))


def _waves_path(args: argparse.Namespace) -> Path | None:
    """Where ``--waves`` puts the dump: its PATH, else beside ``--out`` (same stem), else
    ``insitugen_out/<config stem>``; the suffix is the simulator's format. None: no waves."""
    if args.waves is None:
        return None
    if args.waves is not True:
        return Path(args.waves)
    from verif.waves import wave_suffix

    beside = Path(args.out) if args.out else Path("insitugen_out") / Path(args.config).name
    return beside.with_suffix(wave_suffix(args.simulator))


def run(args: argparse.Namespace) -> int:
    from verif.runner import run_sim

    cfg = load_config(args.config)
    require_simulator(args.simulator)
    extra = _testbench_extra(cfg, args)              # reads and checks --codes
    coverage = Path(args.coverage) if args.coverage else None
    waves_path = _waves_path(args)
    if waves_path is not None:
        from verif.waves import check_waves_path
        require_writable_file(check_waves_path(waves_path, args.simulator), "--waves")
    # --out and --coverage were checked before the command started (flows.preflight);
    # the waves path is computed here, so it is checked here
    res = run_sim(cfg, simulator=args.simulator, seed=args.seed, waves=waves_path is not None,
                  waves_path=waves_path,
                  backpressure=args.backpressure, extra=extra, build_dir=args.build_dir,
                  quiet=not args.verbose,
                  coverage_dir=coverage / "parts" if coverage else None)
    print(_summary(cfg, res))
    for name, c in res.details.get("protocol", {}).items():
        print(f"protocol: stream '{name}': {c['handshakes']} handshakes, {c['lasts']} last, "
              f"{c['stall_cycles']} stalled cycles (longest {c['longest_stall']}), "
              f"{c['valid_drops'] + c['payload_changes']} violations")
    if args.out:
        print(f"wrote {args.out}")
    if coverage:
        from verif.coverage import REPORT_STEM, write_folder_report
        merged = write_folder_report(coverage / "parts", coverage)
        print(f"functional coverage of the {len(merged['tests'])} run(s) in {coverage}: "
              f"{merged['covered_bins']}/{merged['total_bins']} bins; report "
              f"{coverage / (REPORT_STEM + '.txt')}")
    return 0
