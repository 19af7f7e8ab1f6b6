# SPDX-License-Identifier: Apache-2.0
"""``insitugen network MODEL``: per layer and in total, generating the weights vs fetching them.

MODEL is a shipped model name (``resnet18``, ``smallcnn``, ``mobilenetv2``), an MLG
checkpoint, or a layer folder written by ``insitugen export``. Prints one screen (the
per-layer table and the totals) and writes ``network.json``, ``network.csv``,
``network.md``, ``network_time.png`` and ``network_energy.png`` to ``--out``. No
simulation and no synthesis: seconds. The model and its assumptions: ``docs/network.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

#: The default clock and where it comes from.
DEFAULT_DELAY_NS = 3.28
DEFAULT_CLOCK_SOURCE = (
    f"default: 1000 / {DEFAULT_DELAY_NS} ns = {1000 / DEFAULT_DELAY_NS:.1f} MHz, the IHP SG13G2 "
    f"liberty delay estimate of the default generator (128->128 3x3, (2, 44, 3, 6, 3), 3-bit x "
    f"64 lanes, W1-free order, one register stage, 16-weight beats; BENCHMARKS.md section "
    f"10; no wires); --clock-mhz or --synth-json to change")

HELP = ("per layer and in total: generating the weights vs fetching them (time, energy)")

MLG_FIELDS = ("base_in", "base_out", "qb", "qu", "qv")


def add_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``insitugen network``."""
    from insitugen.config import (
        MAX_GENERATOR_STAGES,
        PRODUCT_ORDERS,
        RECOMBINATION_FORMS,
        GeneratorConfig,
    )

    d = GeneratorConfig()
    parser.add_argument("model", metavar="MODEL",
                        help="shipped model name (resnet18, smallcnn, mobilenetv2), MLG "
                             "checkpoint (.pt), or layer folder of insitugen export")
    g = parser.add_argument_group("MLG settings (shipped model names only; a checkpoint or "
                                  "layer folder has its own)")
    for name in MLG_FIELDS:
        g.add_argument(f"--{name.replace('_', '-')}", type=int, default=None,
                       help=f"(default: {getattr(d, name)})")
    g.add_argument("--num-classes", type=int, default=10,
                   help="classifier outputs (default: %(default)s)")
    g.add_argument("--in-channels", type=int, default=None,
                   help="image channels (default: the model's)")
    n = parser.add_argument_group("workload and engine")
    n.add_argument("--input-size", type=int, default=None,
                   help="image height = width in pixels (default: the model's, 32 for "
                        "resnet18)")
    n.add_argument("--batch", type=int, default=1,
                   help="images per generation pass (default: %(default)s)")
    n.add_argument("--engine-bits", type=int, default=d.engine_bits,
                   help="engine multiplier width s (default: %(default)s)")
    n.add_argument("--lanes", type=int, default=d.lanes,
                   help="engine multipliers (default: %(default)s)")
    n.add_argument("--act-bits", type=int, default=8,
                   help="activation bits of the convolution (default: %(default)s)")
    n.add_argument("--out-bits", type=int, default=d.out_bits,
                   help="weight bits: the generator's output width and the width fetched "
                        "(default: %(default)s)")
    n.add_argument("--recombination", choices=RECOMBINATION_FORMS, default=d.recombination,
                   help="generator recombination form (default: %(default)s)")
    # the oihw orders: the w1once order streams tile-major (order = "tile"), which the
    # network's per-layer configs do not set
    n.add_argument("--product-order", choices=[o for o in PRODUCT_ORDERS if o != "w1once"],
                   default=d.product_order,
                   help="generator product order: vb (W1-free) or w1 (W1 recomputed; fewer "
                        "steps on engines of 4 bits and more) (default: %(default)s)")
    n.add_argument("--pipeline-stages", type=int, default=d.pipeline_stages,
                   choices=range(MAX_GENERATOR_STAGES + 1), metavar="N",
                   help=f"generator register stages, 0..{MAX_GENERATOR_STAGES} "
                        f"(default: %(default)s)")
    t = parser.add_argument_group("clock, memory, energy")
    t.add_argument("--clock-mhz", type=float, default=None,
                   help=f"clock (default: the --synth-json delay estimate, else "
                        f"{1000 / DEFAULT_DELAY_NS:.1f} MHz: BENCHMARKS.md section 10)")
    t.add_argument("--synth-json", metavar="R.json", default=None,
                   help="synthesis report (insitugen synth --json) whose delay estimate sets "
                        "the clock")
    t.add_argument("--bandwidth-gbs", type=float, default=25.6,
                   help="DRAM bandwidth in GB/s (default: %(default)s)")
    t.add_argument("--energy-table", metavar="FILE", default=None,
                   help="per-operation energies (TOML or JSON, every entry; see "
                        "docs/network.md) instead of the built-in table")
    m = parser.add_argument_group("measured energy (slow: synthesis + gate-level simulation)")
    m.add_argument("--measure-energy", metavar="CONFIG", nargs="?", const="builtin",
                   default=None,
                   help="also estimate the generator's energy per weight from the switching "
                        "activity of its liberty-mapped netlist, on CONFIG (a generator TOML; "
                        "default: a built-in 4x3x3x3 layer, about a minute)")
    m.add_argument("--liberty", metavar="LIB", default=None,
                   help="Liberty file for --measure-energy (e.g. the IHP sg13g2 typical "
                        "corner)")
    parser.add_argument("--out", metavar="DIR", default="network_out",
                        help="folder for the JSON, CSV, Markdown and PNG files "
                             "(default: %(default)s)")


def _clock(args, engine):
    from flows.network.analysis import Clock
    from flows.network.layers import NetworkError

    if args.clock_mhz is not None and args.synth_json is not None:
        raise NetworkError("give --clock-mhz or --synth-json, not both")
    if args.clock_mhz is not None:
        if not args.clock_mhz > 0:
            raise NetworkError(f"--clock-mhz = {args.clock_mhz} must be > 0")
        return Clock(args.clock_mhz, f"--clock-mhz {args.clock_mhz:g}")
    if args.synth_json is None:
        return Clock(1000 / DEFAULT_DELAY_NS, DEFAULT_CLOCK_SOURCE)
    return clock_from_synth(args.synth_json, engine)


def clock_from_synth(path, engine):
    """The clock of a synthesis report's generator: ``1000 / delay estimate`` (liberty), or
    logic depth x the PDK-free ns per level when it was synthesized without a liberty. The
    report must be of a generator on the same engine (bits and lanes)."""
    from flows.network.analysis import Clock
    from flows.network.layers import NetworkError

    path = Path(path)
    if not path.is_file():
        raise NetworkError(f"--synth-json '{path}' does not exist (write it with insitugen "
                           f"synth CONFIG --json R.json)")
    try:
        report = json.loads(path.read_text())
        gen = report["designs"]["generator"]
        cfg = report["config"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
        raise NetworkError(f"--synth-json '{path}' is not a generator synthesis report of "
                           f"insitugen synth --json") from None
    if (cfg.get("engine_bits"), cfg.get("lanes")) != (engine.engine_bits, engine.lanes):
        raise NetworkError(f"--synth-json '{path}' is of a {cfg.get('engine_bits')}-bit x "
                           f"{cfg.get('lanes')}-lane generator, the network runs on "
                           f"{engine.engine_bits}-bit x {engine.lanes}: synthesize that engine "
                           f"or give --clock-mhz")
    lib = gen.get("liberty") or {}
    if lib.get("delay_estimate"):
        delay = float(lib["delay_estimate"])
        return Clock(1000 / delay, f"--synth-json {path.name}: liberty delay estimate "
                                   f"{delay:.3f} ns of the generator (no wires)")
    from synth.timing import PDK_FREE_NS_PER_LEVEL

    depth = int(gen["pdk_free"]["logic_depth"])
    delay = depth * PDK_FREE_NS_PER_LEVEL
    return Clock(1000 / delay, f"--synth-json {path.name}: {depth} logic levels x "
                               f"{PDK_FREE_NS_PER_LEVEL} ns (PDK-free estimate, +-35 %)")


def _positive(name: str, value, kind=int) -> None:
    from flows.network.layers import NetworkError

    if isinstance(value, bool) or not isinstance(value, kind) or not value > 0:
        raise NetworkError(f"--{name} = {value!r} must be a positive "
                           f"{'integer' if kind is int else 'number'}")


def load_layers(args, hardware: dict):
    """The network's layers and the settings line of the report, from MODEL."""
    from flows.network import layers as NL
    from golden.models import MODELS

    given = {k: getattr(args, k) for k in MLG_FIELDS if getattr(args, k) is not None}
    size = args.input_size
    if args.model in MODELS:
        from insitugen.config import GeneratorConfig

        d = GeneratorConfig()
        mlg = {k: given.get(k, getattr(d, k)) for k in MLG_FIELDS}
        rows = NL.from_shipped(args.model, mlg, hardware, image_size=size,
                               in_channels=args.in_channels, num_classes=args.num_classes)
        img = size or MODELS[args.model][2]
        settings = {"source": f"shipped model {args.model}", **mlg,
                    "mlg": "(Bi, Bo, qb, qu, qv) = ({base_in}, {base_out}, {qb}, {qu}, {qv})"
                           .format(**mlg), "input": f"{img}x{img}"}
        return rows, settings
    path = Path(args.model)
    if not path.exists():
        raise NL.NetworkError(f"unknown model '{args.model}': use one of {', '.join(MODELS)}, "
                              f"an MLG checkpoint file or a layer folder of insitugen export")
    if given:
        raise NL.NetworkError(f"--{next(iter(given)).replace('_', '-')} applies to shipped "
                              f"model names only: '{path}' has its own MLG settings")
    if path.is_dir():
        rows, model_name = NL.from_export_folder(path, hardware, image_size=size,
                                                 num_classes=args.num_classes)
        img = size or MODELS[model_name][2]
        return rows, {"source": f"layer folder {path} (feature maps of {model_name})",
                      "mlg": "per layer from the folder's configs", "input": f"{img}x{img}"}
    rows, info = NL.from_checkpoint(path, hardware, image_size=size)
    m = info["mlg"]
    img = size or MODELS[info["model"]["name"]][2]
    return rows, {"source": f"checkpoint {path.name} ({info['model']['name']})",
                  **{k: m.get(k) for k in MLG_FIELDS},
                  "mlg": "(Bi, Bo, qb, qu, qv) = ({base_in}, {base_out}, {qb}, {qu}, {qv})"
                         .format(**m), "input": f"{img}x{img}"}


def _measure_config(spec: str):
    from flows.network.activity import MEASURE_CONFIG
    from flows.network.layers import NetworkError
    from insitugen.config import GeneratorConfig, load_config

    if spec == "builtin":
        return MEASURE_CONFIG
    cfg = load_config(spec)
    if not isinstance(cfg, GeneratorConfig):
        raise NetworkError(f"--measure-energy '{spec}' is not a generator config")
    return cfg


def _measure(cfg, args, clock, table) -> dict:
    """The measured estimate (flows.network.activity) next to the table's figures for the
    same layer."""
    from flows.network.activity import measure
    from flows.network.energy import generation_energy

    print(f"measuring the generator's energy at gate level in {Path(args.out) / 'measure'} "
          f"(synthesis + simulation, about a minute) ...", flush=True)
    m = measure(cfg, args.liberty, Path(args.out) / "measure", clock_mhz=clock.mhz)
    g = generation_energy(cfg, table)
    m["table_arithmetic_pj_per_weight"] = (g.multiplies + g.adds) / cfg.n_weights
    m["table_code_reads_pj_per_weight"] = g.code_reads / cfg.n_weights
    m["table"] = "the report's energy table (multiplies + adds; code reads)"
    return m


def run(args: argparse.Namespace) -> int:
    from flows.network import report as R
    from flows.network.analysis import analyse
    from flows.network.energy import DEFAULT_TABLE, IHP_SRAM, load_table
    from flows.network.engine import Engine
    from flows.network.layers import NetworkError
    from flows.network.plots import write_plots
    from insitugen.config import GeneratorConfig

    t0 = time.perf_counter()
    _positive("batch", args.batch)
    _positive("bandwidth-gbs", float(args.bandwidth_gbs), float)
    if args.out_bits == 0:
        raise NetworkError("--out-bits 0 (full precision) leaves the convolution's weight width "
                           "open: give the width the engine consumes, e.g. 8")
    engine = Engine(args.engine_bits, args.lanes, args.act_bits, args.out_bits)
    clock = _clock(args, engine)
    table = DEFAULT_TABLE if args.energy_table is None else load_table(args.energy_table)
    # the requantization shift changes neither cycles nor energy: the default config's
    hardware = dict(engine_bits=args.engine_bits, lanes=args.lanes, out_bits=args.out_bits,
                    shift=GeneratorConfig().shift, recombination=args.recombination,
                    product_order=args.product_order, pipeline_stages=args.pipeline_stages)
    # an engine/form the generator cannot take at all is refused here, by the config's own
    # rules on a layer with both levels on; a layer it cannot take is reported as fetched
    GeneratorConfig().replace(**hardware)
    if args.measure_energy is not None and args.liberty is None:
        raise NetworkError("--measure-energy needs --liberty LIB (the cells' internal and "
                           "switching energies)")
    if args.liberty is not None and args.measure_energy is None:
        raise NetworkError("--liberty is used by --measure-energy only: add --measure-energy")
    measure_cfg = _measure_config(args.measure_energy) if args.measure_energy else None
    rows, settings = load_layers(args, hardware)
    name = args.model if Path(args.model).name == args.model else Path(args.model).name
    res = analyse(name, rows, engine, clock, batch=args.batch,
                  bandwidth_gbs=float(args.bandwidth_gbs), table=table,
                  settings={**settings, "recombination": args.recombination,
                            "product_order": args.product_order,
                            "pipeline_stages": args.pipeline_stages,
                            "energy_table": args.energy_table or "built-in"},
                  alt_sram=IHP_SRAM if args.energy_table is None else None)
    if measure_cfg is not None:
        res.measured = _measure(measure_cfg, args, clock, table)
    print(R.to_text(res), end="")
    out = Path(args.out)
    paths = R.write_files(res, out) + write_plots(res, out)
    print(f"wrote {out}/: {', '.join(p.name for p in paths)} "
          f"({time.perf_counter() - t0:.1f} s)")
    return 0
