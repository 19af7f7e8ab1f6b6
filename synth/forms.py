# SPDX-License-Identifier: Apache-2.0
"""Every generator form side by side: area, delay, cycles and memories in one run.

:func:`compare_forms` synthesizes, in one run with one Yosys, the generator of a
config in each form of :data:`FORMS` (product order x register stages) and the
reference engine (``cfg.lanes`` engine lanes, :class:`hdl.reference.ReferenceEngine`)
it is compared with, each with the synth options ``-booth -arith_tree``. It
reports per form: PDK-free NAND2-eq, the overhead over the reference engine,
with a liberty also um^2 and the estimated critical-path delay
(:func:`synth.timing.critical_path`) and its ratio to the engine's, the cycles
of a pass (:class:`insitugen.schedule.Schedule`) against the lower bound of
its own order and against the W1-once algorithmic minimum, the code memory bits and
the W1 buffer of the w1once forms (bits, and SRAM um^2 at
:data:`synth.ratios.SRAM_UM2_PER_BIT`; the buffer is a memory, never in the logic area).

``python -m synth.forms CONFIG [--liberty LIB] [--lanes 16 64 256] [--json R.json]``
prints the Markdown table (the command BENCHMARKS.md records).
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

from eda.process import temp_folder
from insitugen.config import GeneratorConfig, load_config
from insitugen.errors import ConfigError, InsitugenError
from insitugen.schedule import Schedule

#: form name -> config changes; "w1, 0 stages" is the datapath before issue 11.
FORMS: dict[str, dict[str, Any]] = {
    "w1, 0 stages": dict(product_order="w1", pipeline_stages=0),
    "w1, 1 stage": dict(product_order="w1", pipeline_stages=1),
    "vb, 0 stages": dict(product_order="vb", pipeline_stages=0),
    "vb, 1 stage": dict(product_order="vb", pipeline_stages=1),
    "vb, 2 stages": dict(product_order="vb", pipeline_stages=2),
    # the W1-once schedule: tile-major output, a W1 buffer (reported beside the codes)
    "w1once, 0 stages": dict(product_order="w1once", order="tile", pipeline_stages=0),
    "w1once, 1 stage": dict(product_order="w1once", order="tile", pipeline_stages=1),
    "w1once, 2 stages": dict(product_order="w1once", order="tile", pipeline_stages=2),
}

OPTIONS = ("-booth", "-arith_tree")

#: A form may name its output beat: "<form>, beat N" is that form with beat_weights = N.
BEAT_SUFFIX = ", beat "


def form_changes(name: str) -> dict[str, Any]:
    """The config changes of form ``name``: a :data:`FORMS` key, optionally followed by
    ``", beat N"`` (``beat_weights = N`` weights per output beat)."""
    base, sep, beat = name.rpartition(BEAT_SUFFIX)
    if sep and base in FORMS and beat.isdigit():
        return {**FORMS[base], "beat_weights": int(beat)}
    if name in FORMS:
        return FORMS[name]
    raise ConfigError(f"unknown form '{name}': use one of {', '.join(FORMS)}, optionally "
                      f"followed by '{BEAT_SUFFIX}N' (N weights per output beat)")

#: The reference engine with operand registers: the delay baseline whose multiplier path,
#: like the generator's, starts at a register (the plain engine's starts at input ports).
REGISTERED = "reference_engine_registered"


def _verilog(component, name: str) -> str:
    from gen.verilog import amaranth_verilog  # Amaranth's pinned Yosys, scoped

    return amaranth_verilog(component, name)


def _designs(cfg: GeneratorConfig, forms: dict[str, dict[str, Any]]):
    from gen.verilog import emit_verilog, top_name
    from hdl.reference import ReferenceEngine

    out = [("reference_engine", _verilog(ReferenceEngine(cfg.engine_bits, cfg.lanes,
                                                         cfg.acc_bits), "reference_engine"),
            "reference_engine", None),
           (REGISTERED, _verilog(ReferenceEngine(cfg.engine_bits, cfg.lanes, cfg.acc_bits,
                                                 operand_registers=True), REGISTERED),
            REGISTERED, None)]
    for name, changes in forms.items():
        fcfg = cfg.replace(**changes)
        out.append((name, emit_verilog(fcfg), top_name(fcfg), fcfg))
    return out


def compare_forms(cfg: GeneratorConfig, *, liberty=None, yosys=None, jobs: int = 2,
                  forms: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Synthesize every form of ``cfg`` and the reference engine; return the table."""
    from . import yosys as Y
    from .liberty import read_liberty
    from .ratios import SRAM_UM2_PER_BIT
    from .timing import critical_path

    forms = FORMS if forms is None else forms
    lib = read_liberty(liberty) if liberty is not None else None
    seq = lib.sequential_cells if lib is not None else []
    designs = _designs(cfg, forms)
    modes = [("pdk_free", None)] + ([("liberty", liberty)] if liberty is not None else [])
    with temp_folder("forms") as tmp:     # named after our pid: a killed run's is removed later
        root = Path(tmp)
        tasks = [(k, name, v, top, mode, lp) for k, (name, v, top, _) in enumerate(designs)
                 for mode, lp in modes]

        def one(task):
            k, name, v, top, mode, lp = task
            run = Y.synthesize(v, top, root / f"d{k}_{mode}", options=OPTIONS, liberty=lp,
                               sequential_cells=seq, yosys=yosys)
            res = {"nand2_eq": run.nand2_eq} if mode == "pdk_free" else {
                "area_um2": run.area_um2, "ge": run.area_um2 / lib.nand2.area,
                "delay": critical_path(run.netlist(), top, lib)["delay"]}
            if mode == "pdk_free" and run.unknown_cells:
                raise InsitugenError(f"synthesis of '{name}' left cell types without a NAND2 "
                                     f"equivalent: {run.unknown_cells}")
            res["flops"] = sum(n for c, n in run.cells.items()
                               if c in ("$_DFF_P_", "$_DFF_N_") or c in seq)
            res["memory_bits"] = run.memory_bits
            return name, mode, res

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as ex:
            results = list(ex.map(one, sorted(tasks, key=lambda t: -len(t[2]))))
    synth: dict[str, dict[str, Any]] = {}
    for name, mode, res in results:
        synth.setdefault(name, {})[mode] = res
    ref = synth["reference_engine"]
    rows = []
    for name, _, _, fcfg in designs:
        d = synth[name]
        row: dict[str, Any] = {"form": name, "nand2_eq": round(d["pdk_free"]["nand2_eq"], 1),
                               "flops": d["pdk_free"]["flops"]}
        row["overhead_pdk_free"] = round(d["pdk_free"]["nand2_eq"]
                                         / ref["pdk_free"]["nand2_eq"] - 1, 4)
        if lib is not None:
            row["ge"] = round(d["liberty"]["ge"], 1)
            row["overhead_liberty"] = round(d["liberty"]["ge"] / ref["liberty"]["ge"] - 1, 4)
            row["delay_ns"] = round(d["liberty"]["delay"], 3)
            row["delay_over_engine"] = round(d["liberty"]["delay"] / ref["liberty"]["delay"], 3)
            row["delay_over_registered_engine"] = round(
                d["liberty"]["delay"] / synth[REGISTERED]["liberty"]["delay"], 3)
        if fcfg is not None:
            s = Schedule(fcfg)
            row.update({"pass_cycles": s.pass_cycles,
                        "over_lower_bound": round(s.pass_cycles / s.cycles_lower_bound, 4),
                        "over_algorithmic_minimum": round(s.pass_cycles
                                                          / s.algorithmic_minimum, 4),
                        "memory_bits": sum(s.memory_bits.values()),
                        "w1_buffer_bits": s.w1_buffer_bits,
                        "w1_buffer_sram_um2": round(s.w1_buffer_bits * SRAM_UM2_PER_BIT, 1),
                        "synthesized_memory_bits": d["pdk_free"]["memory_bits"]})
        rows.append(row)
    return {"config": cfg.to_dict(), "options": list(OPTIONS),
            "liberty": Path(liberty).name if liberty is not None else None,
            "tools": Y.tool_versions(yosys), "rows": rows,
            "definitions": {
                "overhead": "area(form) / area(reference engine) - 1, same run, logic only "
                            "(memories are reported in bits)",
                "delay_over_engine": "estimated critical-path delay (synth.timing, liberty) / "
                                     "the reference engine's (its path starts at input "
                                     "ports, with no clock-to-Q)",
                "delay_over_registered_engine": "the same over the reference engine with "
                                                "operand registers (its path starts at a "
                                                "flop, like the generator's)",
                "over_lower_bound": "pass cycles / ceil(p q K macs_per_weight / lanes) of the "
                                    "form's own product order",
                "over_algorithmic_minimum": "pass cycles / the W1-once minimum (each W1 "
                                            "computed once; Schedule.algorithmic_minimum)",
                "memory_bits": "code memory bits (B, U, V)",
                "w1_buffer_bits": "bits of the W1 buffer of the w1once forms (Bo x lanes x "
                                  "w1_bits), 0 in the others; w1_buffer_sram_um2 at the "
                                  "SRAM density of synth.ratios.SRAM_UM2_PER_BIT"}}


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:+.1f} %"


def forms_markdown(report: dict[str, Any]) -> str:
    """The table as Markdown."""
    lib = report["liberty"] is not None
    head = ["form", "NAND2-eq", "overhead", "flops"]
    if lib:
        head += ["GE (IHP)", "overhead (IHP)", "delay (ns)", "delay / engine",
                 "delay / registered engine"]
    head += ["cycles / pass", "/ own bound", "/ W1-once min", "memory bits", "W1 buffer bits",
             "W1 buffer SRAM (um^2)"]
    c = report["config"]
    lines = [f"Layer {c['out_channels']} -> {c['in_channels']} k{c['kernel']}, (Bi, Bo) = "
             f"({c['base_in']}, {c['base_out']}), {c['engine_bits']}-bit engine, "
             f"{c['lanes']} lanes; synth {' '.join(report['options'])}, "
             f"{report['tools'].get('yosys', '?')}", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in report["rows"]:
        row = [r["form"], f"{r['nand2_eq']:,.0f}",
               "(reference)" if r["form"] == "reference_engine"
               else _pct(r["overhead_pdk_free"]), f"{r['flops']:,}"]
        is_ref = r["form"] == "reference_engine"
        if lib:
            row += [f"{r['ge']:,.0f}", "(reference)" if is_ref else _pct(r["overhead_liberty"]),
                    f"{r['delay_ns']:.2f}", f"{r['delay_over_engine']:.2f}x",
                    f"{r['delay_over_registered_engine']:.2f}x"]
        if "pass_cycles" in r:
            row += [f"{r['pass_cycles']:,}", f"{r['over_lower_bound']:.3f}x",
                    f"{r['over_algorithmic_minimum']:.3f}x", f"{r['memory_bits']:,}",
                    f"{r['w1_buffer_bits']:,}" if r["w1_buffer_bits"] else "-",
                    f"{r['w1_buffer_sram_um2']:,.0f}" if r["w1_buffer_bits"] else "-"]
        else:
            row += ["-"] * 6
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m synth.forms", description=__doc__.split("\n")[0])
    ap.add_argument("config", help="generator config TOML")
    ap.add_argument("--liberty", help="Liberty file for um^2 and delay (default: PDK-free only)")
    ap.add_argument("--lanes", type=int, nargs="*", default=[],
                    help="also compare at these lane counts (default: the config's only)")
    ap.add_argument("--forms", nargs="*", default=list(FORMS),
                    help="forms to compare, each optionally with ', beat N' (N weights per "
                         "output beat) (default: %(default)s)")
    ap.add_argument("--json", help="write the reports as JSON here")
    ap.add_argument("--jobs", type=int, default=2, help="parallel Yosys runs (default: 2)")
    args = ap.parse_args(argv)
    try:
        cfg = load_config(args.config)
        if not isinstance(cfg, GeneratorConfig):
            raise ConfigError(f"config '{args.config}' is not a generator config: "
                              f"synth.forms compares generator forms")
        forms = {f: form_changes(f) for f in args.forms}
        reports = []
        for lanes in [cfg.lanes] + [n for n in args.lanes if n != cfg.lanes]:
            rep = compare_forms(cfg.replace(lanes=lanes), liberty=args.liberty,
                                jobs=args.jobs, forms=forms)
            reports.append(rep)
            print(forms_markdown(rep), flush=True)
    except InsitugenError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        import json

        from insitugen.files import atomic_write
        text = json.dumps(reports, indent=2) + "\n"
        atomic_write(Path(args.json), lambda tmp: Path(tmp).write_text(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
