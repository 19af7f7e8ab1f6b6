# SPDX-License-Identifier: Apache-2.0
"""Figures of one point: those that follow from the config alone (:func:`config_figures`,
:func:`cycle_figures`) and those of synthesis (:func:`evaluate_point`,
:func:`metrics_from_report`)."""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping, Sequence

from insitugen.config import GeneratorConfig

__all__ = ["Evaluator", "schedule_figures", "config_figures", "cycle_figures",
           "metrics_from_report", "metrics_from_fpga_report", "evaluate_point"]

#: An evaluator: ``(cfg, liberty) -> flat metrics``; picklable for processes and Dask.
Evaluator = Callable[[GeneratorConfig, "str | None"], Mapping[str, Any]]


def schedule_figures(cfg: GeneratorConfig) -> dict[str, int]:
    """The generator's schedule for the config, from :class:`insitugen.schedule.Schedule`
    (the arithmetic the RTL implements and every simulation matches cycle for cycle)."""
    from insitugen.schedule import Schedule

    s = Schedule(cfg)
    return {"rounds_per_row": s.rounds_per_row, "steps_per_round": s.steps_per_round,
            "cycles_lower_bound": s.cycles_lower_bound, "latency": s.latency,
            "cycles_per_pass": s.pass_cycles}


def cycle_figures(cfg: GeneratorConfig) -> dict[str, Any]:
    """Cycle figures of one pass over the layer: ``rounds_per_row``, ``steps_per_round``,
    ``cycles_lower_bound``, ``latency``, ``cycles_per_pass`` (``Schedule.pass_cycles``: p x
    rounds_per_row x steps_per_round + latency, plus the drain of a beat narrower than the
    lanes) and ``cycles_source`` (``"schedule"``)."""
    return {**schedule_figures(cfg), "cycles_source": "schedule"}


def config_figures(cfg: GeneratorConfig) -> dict[str, Any]:
    """Memory and schedule figures that follow from the config alone (no tools, no HDL;
    :func:`evaluate_point` replaces the cycle figures with the generator's own)."""
    code_bits, weight_bits = cfg.code_memory_bits, cfg.weight_memory_bits
    figures: dict[str, Any] = {
        "n_weights": cfg.n_weights,
        "code_memory_bits": code_bits,
        "weight_memory_bits": weight_bits,
        "memory_saved_bits": weight_bits - code_bits,
        "compression": round(weight_bits / code_bits, 4) if code_bits else None,
        "macs_per_weight": cfg.macs_per_weight,
        "acc_bits": cfg.acc_bits,
        "w1_bits": cfg.w1_bits,
        "weight_bits": cfg.weight_bits,
        **cycle_figures(cfg),
    }
    return figures


_TIME_UNITS = {"fs": 1e-6, "ps": 1e-3, "ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


def _unit_in_ns(unit: str | None) -> float | None:
    """``"1ns"`` -> 1.0, ``"10ps"`` -> 0.01 (a Liberty ``time_unit``); None if unreadable."""
    m = re.fullmatch(r"\s*([0-9.]*)\s*([a-z]+)\s*", unit or "")
    if not m or m.group(2) not in _TIME_UNITS:
        return None
    return float(m.group(1) or 1) * _TIME_UNITS[m.group(2)]


def metrics_from_report(report: Mapping[str, Any]) -> dict[str, Any]:
    """Flat metrics of a :func:`synth.report.run_synth` report of a generator.

    Areas are the report's liberty GE when it has a liberty, else its PDK-free NAND2
    equivalents (``area_unit`` says which); the PDK-free figures are always kept as
    ``*_nand2_eq``. ``logic_added = generator_area - engine_area`` and ``overhead =
    logic_added / engine_area`` (the report's ``overhead_over_reference_engine``);
    memories are not logic (their bits are in ``memory_bits``). ``fmax_mhz = 1000 /
    delay_ns`` from the report's critical-path estimate (liberty only; no wires, no
    setup time: an optimistic estimate).
    """
    designs = report["designs"]
    liberty = all("liberty" in d for d in designs.values())
    mode, key = ("liberty", "ge") if liberty else ("pdk_free", "nand2_eq")

    def get(design: str, field: str, m: str = mode) -> Any:
        return designs.get(design, {}).get(m, {}).get(field)

    gen, eng = get("generator", key), get("reference_engine", key)
    ded = get("dedicated_generator", key)
    added = round(gen - eng, 4) if gen is not None and eng is not None else None
    recomb = [n for n in designs if n.startswith("recombination_")]
    out: dict[str, Any] = {
        "area_unit": "GE (liberty)" if liberty else "GE (PDK-free)",
        "generator_area": gen, "engine_area": eng, "dedicated_area": ded,
        "logic_added": added,
        "overhead": round(added / eng, 5) if added is not None and eng else None,
        "generator_over_dedicated": round(gen / ded, 5) if gen and ded else None,
        "recombination_area": (sum(get(n, key) for n in recomb) * report["config"]["lanes"]
                               if recomb else 0.0),
        "depth": get("generator", "logic_depth"),
        "engine_depth": get("reference_engine", "logic_depth"),
        "dedicated_depth": get("dedicated_generator", "logic_depth"),
        "flops": get("generator", "flops"),
        "generator_nand2_eq": get("generator", "nand2_eq", "pdk_free"),
        "engine_nand2_eq": get("reference_engine", "nand2_eq", "pdk_free"),
        "dedicated_nand2_eq": get("dedicated_generator", "nand2_eq", "pdk_free"),
        "generator_options": " ".join(get("generator", "options") or []) or "(none)",
        "memory_bits": designs.get("generator", {}).get("memory_bits"),
        "synth_seconds": report.get("seconds"),
    }
    if liberty:
        scale = _unit_in_ns(get("generator", "delay_unit"))
        delay = get("generator", "delay_estimate")
        delay_ns = delay * scale if delay is not None and scale is not None else None
        out.update({
            "generator_area_um2": get("generator", "area_um2"),
            "engine_area_um2": get("reference_engine", "area_um2"),
            "dedicated_area_um2": get("dedicated_generator", "area_um2"),
            "delay_ns": round(delay_ns, 4) if delay_ns is not None else None,
            "fmax_mhz": round(1000.0 / delay_ns, 2) if delay_ns else None,
        })
    return out


def metrics_from_fpga_report(report: Mapping[str, Any]) -> dict[str, Any]:
    """Flat metrics of a :func:`synth.fpga.run_fpga` report of a generator: the areas are
    LUT counts (``area_unit``), ``fmax_mhz`` / ``engine_fmax_mhz`` nextpnr's achieved
    Fmax after place and route (``fmax_source``; None where the target has no P&R or
    the design fits no device, ``pnr_note`` says why); ``fmax_upper_bound``: nextpnr
    left some of the generator's paths untimed (Gowin's block-RAM outputs), so
    ``fmax_mhz`` is an upper bound."""
    from synth.fpga import pnr_fmax

    d = report["designs"]

    def res(design: str, key: str) -> int | None:
        return d.get(design, {}).get("resources", {}).get(key)

    gen, eng, ded = (res(n, "lut") for n in ("generator", "reference_engine",
                                              "dedicated_generator"))
    added = gen - eng if gen is not None and eng is not None else None
    pnr = report.get("pnr", {})
    fmax = pnr_fmax(report, "generator")
    return {
        "area_unit": f"LUTs ({report['target']})",
        "generator_area": gen, "engine_area": eng, "dedicated_area": ded,
        "logic_added": added,
        "overhead": round(added / eng, 5) if added is not None and eng else None,
        "generator_over_dedicated": round(gen / ded, 5) if gen and ded else None,
        "flops": res("generator", "ff"), "engine_flops": res("reference_engine", "ff"),
        "dsp": res("generator", "dsp"), "bram": res("generator", "bram"),
        "lutram": res("generator", "lutram"),
        "fmax_mhz": fmax, "engine_fmax_mhz": pnr_fmax(report, "reference_engine"),
        "fmax_source": f"nextpnr ({report['target']})" if fmax is not None else None,
        "fmax_upper_bound": (fmax is not None
                             and "untimed" in pnr.get("designs", {}).get("generator", {})),
        "device": (pnr.get("designs", {}).get("generator") or {}).get("device"),
        "pnr_note": pnr.get("not_run", ""),
        "synth_seconds": report.get("seconds"),
    }


def evaluate_point(cfg: GeneratorConfig, liberty: str | None = None, *,
                   option_sets: Sequence[Sequence[str]] | None = None,
                   synth_jobs: int = 1, target: str = "asic") -> dict[str, Any]:
    """Synthesize one config (:func:`synth.report.run_synth`: the generator,
    the reference engine, the dedicated generator) and return its flat metrics
    (:func:`metrics_from_report`) and cycle figures (:func:`cycle_figures`).

    ``option_sets``: Yosys option sets tried per design (default: all of
    :data:`synth.yosys.OPTION_SETS`, the best kept). ``synth_jobs``:
    parallel Yosys runs inside this point (1: a sweep parallelizes over points).
    ``target``: an FPGA target of :data:`synth.fpga.TARGETS` instead of ``asic``:
    resources and place-and-route Fmax (:func:`metrics_from_fpga_report`).
    """
    if target != "asic":
        from synth.fpga import run_fpga
        report = run_fpga(cfg, target, jobs=synth_jobs)
        return {**metrics_from_fpga_report(report), **cycle_figures(cfg)}
    from synth.report import run_synth
    from synth.yosys import OPTION_SETS
    report = run_synth(cfg, liberty=liberty, option_sets=option_sets or OPTION_SETS,
                       jobs=synth_jobs)
    return {**metrics_from_report(report), **cycle_figures(cfg)}
